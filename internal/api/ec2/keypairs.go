package ec2

import (
	"context"
	"encoding/base64"
	"sort"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/keypair"
	"nubo/internal/resource"
)

func (a *API) createKeyPair(ctx context.Context, r *ec2query.Request) (any, error) {
	name := r.Params.String("KeyName")
	if err := keypair.ValidateName(name); err != nil {
		return nil, err
	}
	keyType := r.Params.String("KeyType")
	switch keyType {
	case "":
		keyType = "rsa"
	case "rsa", "ed25519":
	default:
		return nil, apierr.InvalidValue("KeyType", keyType, "Valid values are rsa and ed25519.")
	}
	switch f := r.Params.String("KeyFormat"); f {
	case "", "pem":
	case "ppk":
		return nil, apierr.New(apierr.UnsupportedOperation, "KeyFormat ppk is not supported by nubo; use pem (PuTTYgen converts it).")
	default:
		return nil, apierr.InvalidValue("KeyFormat", f, "Valid values are pem and ppk.")
	}
	tags, err := parseTagSpecs(r.Params, resource.KeyPair)
	if err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	kp, private, err := a.KeyPairs.Create(ctx, a.scope(r), name, keyType, tags)
	if err != nil {
		return nil, err
	}
	return struct {
		KeyName        string                       `xml:"keyName"`
		KeyFingerprint string                       `xml:"keyFingerprint"`
		KeyMaterial    string                       `xml:"keyMaterial"`
		KeyPairID      string                       `xml:"keyPairId"`
		TagSet         *ec2query.List[ec2query.Tag] `xml:"tagSet"`
	}{kp.Name, kp.Fingerprint, private, kp.ID, ec2query.TagSet(kp.Tags)}, nil
}

func (a *API) importKeyPair(ctx context.Context, r *ec2query.Request) (any, error) {
	name := r.Params.String("KeyName")
	if err := keypair.ValidateName(name); err != nil {
		return nil, err
	}
	enc, err := r.Params.Required("PublicKeyMaterial")
	if err != nil {
		return nil, err
	}
	material, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, apierr.New(apierr.InvalidParameterValue, "Value for parameter PublicKeyMaterial is invalid: it must be base64 encoded.")
	}
	tags, err := parseTagSpecs(r.Params, resource.KeyPair)
	if err != nil {
		return nil, err
	}
	if _, _, err := keypair.ParsePublic(material); err != nil {
		return nil, apierr.New(apierr.InvalidParameterValue, "Value for parameter PublicKeyMaterial is invalid: %v", err)
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	kp, err := a.KeyPairs.Import(ctx, a.scope(r), name, material, tags)
	if err != nil {
		return nil, err
	}
	return struct {
		KeyFingerprint string                       `xml:"keyFingerprint"`
		KeyName        string                       `xml:"keyName"`
		KeyPairID      string                       `xml:"keyPairId"`
		TagSet         *ec2query.List[ec2query.Tag] `xml:"tagSet"`
	}{kp.Fingerprint, kp.Name, kp.ID, ec2query.TagSet(kp.Tags)}, nil
}

type keyPairItem struct {
	KeyPairID      string                       `xml:"keyPairId"`
	KeyFingerprint string                       `xml:"keyFingerprint"`
	KeyName        string                       `xml:"keyName"`
	KeyType        string                       `xml:"keyType"`
	TagSet         *ec2query.List[ec2query.Tag] `xml:"tagSet"`
	PublicKey      string                       `xml:"publicKey,omitempty"`
	CreateTime     string                       `xml:"createTime"`
}

var keyPairFilters = map[string]ec2query.FilterFunc[keypair.KeyPair]{
	"key-pair-id": func(k keypair.KeyPair) []string { return []string{k.ID} },
	"key-name":    func(k keypair.KeyPair) []string { return []string{k.Name} },
	"fingerprint": func(k keypair.KeyPair) []string { return []string{k.Fingerprint} },
	"key-type":    func(k keypair.KeyPair) []string { return []string{k.Type} },
}

func (a *API) describeKeyPairs(ctx context.Context, r *ec2query.Request) (any, error) {
	filters, err := ec2query.ParseFilters(r.Params)
	if err != nil {
		return nil, err
	}
	m, err := ec2query.Compile(filters, keyPairFilters, func(k keypair.KeyPair) ec2query.Tags { return k.Tags })
	if err != nil {
		return nil, err
	}
	withPublic, err := r.Params.Bool("IncludePublicKey")
	if err != nil {
		return nil, err
	}
	names, ids := r.Params.Strings("KeyName"), r.Params.Strings("KeyPairId")
	for _, id := range ids {
		if !resource.ValidID(resource.KeyPair, id) {
			return nil, apierr.New("InvalidKeyPairId.Malformed", "Invalid id: \"%s\" (expecting \"key-...\")", id)
		}
	}
	var all []keypair.KeyPair
	if len(names) > 0 || len(ids) > 0 {
		all, err = a.selectKeyPairs(ctx, r, names, ids)
	} else {
		all, err = a.KeyPairs.List(ctx, a.scope(r))
	}
	if err != nil {
		return nil, err
	}
	var items []keyPairItem
	for _, k := range m.Apply(all) {
		it := keyPairItem{KeyPairID: k.ID, KeyFingerprint: k.Fingerprint, KeyName: k.Name, KeyType: k.Type,
			TagSet: ec2query.TagSet(k.Tags), CreateTime: ec2query.Time(k.CreateTime)}
		if withPublic {
			it.PublicKey = k.PublicKey + " " + k.Name
		}
		items = append(items, it)
	}
	return struct {
		KeySet ec2query.List[keyPairItem] `xml:"keySet"`
	}{ec2query.ListOf(items)}, nil
}

// selectKeyPairs fetches the key pairs named by name or ID, each once; every
// one asked for must exist, as EC2 fails the whole call otherwise.
func (a *API) selectKeyPairs(ctx context.Context, r *ec2query.Request, names, ids []string) ([]keypair.KeyPair, error) {
	seen := map[string]bool{}
	var out []keypair.KeyPair
	add := func(k keypair.KeyPair, err error) error {
		if err == nil && !seen[k.ID] {
			seen[k.ID] = true
			out = append(out, k)
		}
		return err
	}
	for _, n := range names {
		if err := add(a.KeyPairs.Get(ctx, a.scope(r), n)); err != nil {
			return nil, err
		}
	}
	for _, id := range ids {
		if err := add(a.KeyPairs.GetByID(ctx, a.scope(r), id)); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (a *API) deleteKeyPair(ctx context.Context, r *ec2query.Request) (any, error) {
	name, id := r.Params.String("KeyName"), r.Params.String("KeyPairId")
	if name == "" && id == "" {
		return nil, apierr.New(apierr.MissingParameter, "The request must contain the parameter KeyName or KeyPairId")
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	deleted, err := a.KeyPairs.Delete(ctx, a.scope(r), name, id)
	if err != nil {
		return nil, err
	}
	return struct {
		Return    bool   `xml:"return"`
		KeyPairID string `xml:"keyPairId,omitempty"`
	}{true, deleted}, nil
}
