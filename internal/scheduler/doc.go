// Package scheduler decides where instances run: a pure function, Place, from
// a request and a snapshot of hosts and instances to placements. It reads no
// store and keeps no state, so the caller can bind its answer with a
// compare-and-swap on the records it read, and retry with a fresh snapshot
// when the swap fails.
//
// # Model
//
// Hosts belong to racks, racks to availability zones. A host offers vCPUs,
// memory and instance slots (0 slots = no limit on the count) and is Live or
// not; a host with no rack is a rack of its own. Snapshot.Instances are the
// instances that hold capacity (pending or running); stopped instances hold
// none and are not in it. A rack is named within its zone.
//
// One request lands in one zone, as one EC2 reservation lands in its
// subnet's zone: req.Zone when given, else the zones are tried in order
// (fewest instances of the group, then fewest instances, then name) and the
// first that takes MaxCount wins; if none does, the one that takes the most
// (at least MinCount). Placements never exceed a host's vCPUs, memory or
// slots, never go to a host that is not Live, and respect tenancy: a
// dedicated instance shares its host only with its own account's instances.
//
// # Rules
//
//   - No group: each instance goes to the least-loaded fitting host, load
//     being the fullest of its resources (used/total of vCPUs, memory,
//     slots); ties go to the host name.
//   - cluster: all instances of the group in one rack of one zone. Existing
//     members fix the zone (another zone is InvalidPlacementGroup.InUse) and
//     the rack. Without members, the rack that fits the most instances (up
//     to MaxCount) wins, ties by name. If no rack fits MinCount the whole
//     launch fails with InsufficientInstanceCapacity. Inside the rack, least
//     loaded first.
//   - spread, level rack (default): every member in a zone on its own rack,
//     at most 7 members per zone (counting existing ones); more is refused.
//     Level host: every member on its own host, no count limit.
//   - partition: partitions 1..PartitionCount (at most 7). A rack holding a
//     member of partition p belongs to p in that zone; p grows into racks
//     holding no member of the group, never into another partition's. A
//     fixed Partition puts every instance there; automatic choice gives each
//     instance to the partition with the fewest members in the zone (ties:
//     lowest number). Within a partition: its own racks first, least loaded
//     host; a new rack (first free by name) only when they are full.
//
// Output is deterministic: hosts are sorted by name first, so neither the
// order of Snapshot.Hosts nor of Snapshot.Instances changes the answer.
//
// Re-placing a stopped instance (StartInstances) is an ordinary request with
// MinCount = MaxCount = 1, the instance's group, its partition fixed, and a
// snapshot without the instance: it may land on another host, under the
// same rules as a launch.
package scheduler
