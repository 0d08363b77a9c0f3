package ec2

import (
	"nubo/internal/api/ec2query"
	"nubo/internal/instance"
	"nubo/internal/volume"
)

// parseRootEbs reads the root volume's type, performance and encryption
// from a launch's BlockDeviceMapping.N.Ebs (its size and
// DeleteOnTermination are read with them by runInstances).
func parseRootEbs(ebs ec2query.Params, spec *instance.RunSpec) error {
	var rs volume.RootSpec
	if spec.Root != nil {
		rs = *spec.Root
	}
	var err error
	if t := ebs.String("VolumeType"); t != "" {
		rs.Type = t
	}
	if n, err := optInt(ebs, "Iops"); err != nil {
		return err
	} else if n != nil {
		rs.Iops = n
	}
	if n, err := optInt(ebs, "Throughput"); err != nil {
		return err
	} else if n != nil {
		rs.Throughput = n
	}
	enc, err := ebs.OptBool("Encrypted")
	if err != nil {
		return err
	}
	if enc != nil {
		rs.Encrypted = enc
	}
	if k := ebs.String("KmsKeyId"); k != "" {
		rs.KmsKeyID = k
	}
	if d, err := ebs.OptBool("DeleteOnTermination"); err != nil {
		return err
	} else if d != nil {
		rs.DeleteOnTermination = d
	}
	if rs != (volume.RootSpec{}) {
		spec.Root = &rs
	}
	return nil
}
