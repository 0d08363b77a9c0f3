// Package volume is EBS volumes. Today: root volumes, made copy-on-write from
// an image (an overlay whose upper layer is the volume's own data), kept
// across stop and start, deleted at termination when DeleteOnTermination.
package volume

import (
	"time"

	"nubo/internal/resource"
)

// Volume is the stored record of a volume.
type Volume struct {
	resource.Meta
	SizeGiB    int         `json:"sizeGiB"`
	Zone       string      `json:"zone"`
	Type       string      `json:"type"` // gp3
	Iops       int         `json:"iops"`
	Throughput int         `json:"throughput"`
	State      string      `json:"state"` // creating | available | in-use | deleting | deleted
	ImageID    string      `json:"imageId,omitempty"`
	Host       string      `json:"host"`
	Attachment *Attachment `json:"attachment,omitempty"`
	Encrypted  bool        `json:"encrypted"`
}

// Attachment is a volume's link to an instance.
type Attachment struct {
	InstanceID          string    `json:"instanceId"`
	Device              string    `json:"device"`
	AttachTime          time.Time `json:"attachTime"`
	DeleteOnTermination bool      `json:"deleteOnTermination"`
}
