// Package instance is EC2 instances as records: what the API promises
// (desired state, EC2's immediate view of the state) and what a host agent
// observes and writes back. The agent (package agent) makes them real.
//
// States and who moves them:
//
//	API:   RunInstances → pending; Stop → stopping; Start → pending;
//	       Terminate → shutting-down; Reboot bumps Boot.
//	Agent: pending → running once the instance's init is up; stopping →
//	       stopped; shutting-down → terminated; running → stopped/terminated
//	       when the instance powers itself off.
package instance

import (
	"strings"
	"time"

	"nubo/internal/resource"
	"nubo/internal/store"
)

// EC2's instance states and their codes.
const (
	Pending      = "pending"
	Running      = "running"
	ShuttingDown = "shutting-down"
	Terminated   = "terminated"
	Stopping     = "stopping"
	Stopped      = "stopped"
)

// StateCode is EC2's numeric code of a state name.
func StateCode(state string) int {
	return map[string]int{Pending: 0, Running: 16, ShuttingDown: 32, Terminated: 48, Stopping: 64, Stopped: 80}[state]
}

// Reason is EC2's StateReason.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Common reasons, as EC2 words them.
var (
	ReasonUserStop      = &Reason{"Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"}
	ReasonUserTerminate = &Reason{"Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"}
	ReasonOSShutdown    = &Reason{"Client.InstanceInitiatedShutdown", "Client.InstanceInitiatedShutdown: Instance initiated shutdown"}
	ReasonPending       = &Reason{"pending", "pending"}
	ReasonCrashed       = &Reason{"Server.InternalError", "Server.InternalError: The instance's processes ended unexpectedly"}
	ReasonHostFailed    = &Reason{"Server.InternalError", "Server.InternalError: The host the instance ran on failed"}
	ReasonNoCapacity    = &Reason{"Server.InsufficientInstanceCapacity", "Server.InsufficientInstanceCapacity: Insufficient capacity to satisfy start request"}
	ReasonUserHibernate = &Reason{"Client.UserInitiatedHibernate", "Client.UserInitiatedHibernate: User initiated hibernate"}
)

// Instance is the stored record of one instance.
type Instance struct {
	resource.Meta
	Account       string `json:"account"`
	Region        string `json:"region"`
	ReservationID string `json:"reservationId"`
	LaunchIndex   int    `json:"launchIndex"`
	ImageID       string `json:"imageId"`
	InstanceType  string `json:"instanceType"`
	KeyName       string `json:"keyName,omitempty"`
	// PublicKey is the key pair's public key at launch, which the metadata
	// service serves: deleting or replacing the key pair changes nothing
	// for the instance, as in EC2.
	PublicKey string `json:"publicKey,omitempty"`
	Zone      string `json:"zone"`
	// Host is where the instance runs, or last ran (package topology);
	// Machine is the machine whose agent serves that host ("" in records
	// from before topologies, whose Host was the machine).
	Host    string `json:"host"`
	Machine string `json:"machine,omitempty"`
	// The placement group (ID and name) and partition (1..7 in a partition
	// group, else 0) the instance belongs to, and its tenancy ("" default).
	PlacementGroupID   string `json:"placementGroupId,omitempty"`
	PlacementGroupName string `json:"placementGroupName,omitempty"`
	Partition          int    `json:"partition,omitempty"`
	Tenancy            string `json:"tenancy,omitempty"`
	UserData           string `json:"userData,omitempty"` // base64, as given
	ClientToken        string `json:"clientToken,omitempty"`

	// Desired is what the API asked for: running, stopped or terminated.
	Desired string `json:"desired"`
	// ForceStop: stop without giving the instance time to shut down.
	ForceStop bool `json:"forceStop,omitempty"`
	// Hibernation: configured for hibernation at launch (never changes).
	// Hibernate: the current or last stop is a hibernation (set by
	// StopHibernate, cleared by a normal stop); the agent saves the memory
	// when stopping and restores it at the next start.
	Hibernation bool `json:"hibernation,omitempty"`
	Hibernate   bool `json:"hibernate,omitempty"`
	// Boot counts start and reboot requests; an agent seeing a higher Boot
	// than it last ran restarts the instance.
	Boot int64 `json:"boot"`

	State                 string    `json:"state"`
	StateReason           *Reason   `json:"stateReason,omitempty"`
	StateTransitionReason string    `json:"stateTransitionReason,omitempty"`
	LaunchTime            time.Time `json:"launchTime"`
	TerminatedAt          time.Time `json:"terminatedAt,omitempty"`

	ShutdownBehavior      string `json:"shutdownBehavior"` // stop | terminate
	DisableAPITermination bool   `json:"disableApiTermination,omitempty"`

	VPCID     string `json:"vpcId"`
	SubnetID  string `json:"subnetId"`
	PrivateIP string `json:"privateIp"`
	PublicIP  string `json:"publicIp,omitempty"` // auto-assigned; changes at every stop/start
	// LastPublicIP is the auto-assigned address the instance had before it
	// stopped: the next start gives it another, as EC2 does.
	LastPublicIP string `json:"lastPublicIp,omitempty"`
	// ElasticIP is the allocation ID of an associated Elastic IP, whose
	// address is then PublicIP and stays across stop and start.
	ElasticIP string `json:"elasticIp,omitempty"`
	// AssignPublic: the instance gets a public address at every start.
	AssignPublic bool `json:"assignPublic,omitempty"`
	// MAC, PrivateIP, SubnetID and SecurityGroups are also the primary
	// interface's: NetworkInterfaceID (eth0, an eni record; "" for
	// instances launched before interfaces were records).
	MAC                string `json:"mac"`
	NetworkInterfaceID string `json:"networkInterfaceId,omitempty"`
	// SecurityGroups are the IDs of the primary interface's security
	// groups (1 to 5, in the VPC), in the order given.
	SecurityGroups []string `json:"securityGroups,omitempty"`

	RootVolumeID        string `json:"rootVolumeId"`
	RootDevice          string `json:"rootDevice"`
	RootSizeGiB         int    `json:"rootSizeGiB"`
	DeleteOnTermination bool   `json:"deleteOnTermination"`
	Hostname            string `json:"hostname"`

	// MetadataOptions are the metadata service's settings for the
	// instance; empty fields (records older than them) mean EC2's defaults.
	MetadataOptions MetadataOptions `json:"metadataOptions,omitzero"`
}

// MetadataOptions is EC2's InstanceMetadataOptions. Read them through
// Effective: an empty field is the default.
type MetadataOptions struct {
	HTTPTokens              string `json:"httpTokens,omitempty"`              // optional | required
	HTTPEndpoint            string `json:"httpEndpoint,omitempty"`            // enabled | disabled
	HTTPPutResponseHopLimit int    `json:"httpPutResponseHopLimit,omitempty"` // 1–64
	InstanceMetadataTags    string `json:"instanceMetadataTags,omitempty"`    // enabled | disabled
	HTTPProtocolIPv6        string `json:"httpProtocolIpv6,omitempty"`        // enabled | disabled
}

// EC2's defaults for an image without ImdsSupport v2.0 and no account-level
// defaults (nubo has neither): IMDSv1 allowed, one hop.
var DefaultMetadataOptions = MetadataOptions{
	HTTPTokens: "optional", HTTPEndpoint: "enabled", HTTPPutResponseHopLimit: 1,
	InstanceMetadataTags: "disabled", HTTPProtocolIPv6: "disabled",
}

// Effective fills the fields o leaves empty with the defaults.
func (o MetadataOptions) Effective() MetadataOptions { return o.Over(DefaultMetadataOptions) }

// Over returns base with the fields o sets replaced.
func (o MetadataOptions) Over(base MetadataOptions) MetadataOptions {
	if o.HTTPTokens != "" {
		base.HTTPTokens = o.HTTPTokens
	}
	if o.HTTPEndpoint != "" {
		base.HTTPEndpoint = o.HTTPEndpoint
	}
	if o.HTTPPutResponseHopLimit != 0 {
		base.HTTPPutResponseHopLimit = o.HTTPPutResponseHopLimit
	}
	if o.InstanceMetadataTags != "" {
		base.InstanceMetadataTags = o.InstanceMetadataTags
	}
	if o.HTTPProtocolIPv6 != "" {
		base.HTTPProtocolIPv6 = o.HTTPProtocolIPv6
	}
	return base
}

// MachineName is the machine whose agent runs the instance.
func (in Instance) MachineName() string {
	if in.Machine != "" {
		return in.Machine
	}
	return in.Host
}

// Key is where an instance's record lives.
func Key(account, region, id string) string {
	return resource.Key(resource.Scope{Account: account, Region: region}, resource.Instance, id)
}

// AllPrefix is the prefix under which every record of every account lives;
// agents watch it and pick instance keys out (see IsInstanceKey).
const AllPrefix = store.Root + "res/"

// IsInstanceKey reports whether a key under AllPrefix is an instance record's.
func IsInstanceKey(k string) bool { return strings.Contains(k, "/"+resource.Instance.Name+"/") }
