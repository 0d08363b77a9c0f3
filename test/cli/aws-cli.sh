#!/usr/bin/env bash
# Drives `nubo serve` with Debian's stock aws CLI (awscli 2.9 on /usr/bin/python3),
# through `eval "$(nubo env)"` as the README shows, and with --endpoint-url.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=$(realpath "${NUBO_BIN:-bin/nubo}")
export PATH=/usr/bin:/bin:/usr/sbin:/sbin # the stock aws, never a pyenv shim
dir=$(mktemp -d /tmp/nubo-cli.XXXXXX)
chmod 711 "$dir" # instance roots reach their root filesystems below it
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Reuse the debian-12-minimal the Go tests built in this run, if any.
cache=${NUBO_IMAGE_CACHE:-/tmp/nubo-image-cache}
images=$(ls -td "$cache"/*/debian-12-minimal/manifest.json 2>/dev/null | head -1 | xargs -r dirname | xargs -r dirname)
if [ -z "$images" ]; then
  images=$cache/cli
  "$BIN" image build debian-12-minimal --image-dir "$images" >/dev/null
fi
"$BIN" serve --data-dir "$dir" --listen "127.0.0.1:$port" --image-dir "$images" >"$dir/out.log" 2>"$dir/err.log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  "$BIN" serve --cleanup --data-dir "$dir" || echo "cleanup failed"
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/healthz')" 2>/dev/null && break
  sleep 0.1
done

eval "$("$BIN" env --data-dir "$dir")"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && echo "     $2"; }
# expect NAME WANT CMD...: CMD's stdout must equal WANT.
expect() {
  local name=$1 want=$2; shift 2
  local got; got=$("$@" 2>&1)
  [ "$got" = "$want" ] && ok "$name" || bad "$name" "want [$want] got [$got]"
}
# expect_error NAME CODE CMD...: CMD must fail with EC2 error CODE.
expect_error() {
  local name=$1 code=$2; shift 2
  local got; got=$("$@" 2>&1) && { bad "$name" "succeeded: $got"; return; }
  grep -q "($code)" <<<"$got" && ok "$name" || bad "$name" "want ($code), got: $got"
}

expect "describe-availability-zones" "us-east-1a	us-east-1b	us-east-1c" \
  aws ec2 describe-availability-zones --query 'AvailabilityZones[].ZoneName' --output text
expect "--endpoint-url form" "us-east-1" \
  command aws --endpoint-url "$AWS_ENDPOINT_URL" ec2 describe-regions --query 'Regions[0].RegionName' --output text
expect "create-key-pair" "-----BEGIN RSA PRIVATE KEY-----" \
  bash -c 'key=$(command aws --endpoint-url "$AWS_ENDPOINT_URL" ec2 create-key-pair --key-name k1 --query KeyMaterial --output text); echo "${key%%$'"'"'\n'"'"'*}"'
expect_error "duplicate key name" InvalidKeyPair.Duplicate aws ec2 create-key-pair --key-name k1
expect_error "wrong secret" AuthFailure env AWS_SECRET_ACCESS_KEY=wrong aws --endpoint-url "$AWS_ENDPOINT_URL" ec2 describe-key-pairs
expect_error "dry run" DryRunOperation aws ec2 create-key-pair --key-name k2 --dry-run
expect "dry run created nothing" "k1" aws ec2 describe-key-pairs --query 'KeyPairs[].KeyName' --output text

ssh-keygen -q -t ed25519 -N '' -f "$dir/id" -C me@host
want_fp=$(ssh-keygen -l -E sha256 -f "$dir/id.pub" | awk '{print $2}' | sed 's/^SHA256://')
got_fp=$(aws ec2 import-key-pair --key-name imported --public-key-material "fileb://$dir/id.pub" --query KeyFingerprint --output text)
[ "${got_fp%=}" = "$want_fp" ] && ok "import-key-pair ed25519 fingerprint" || bad "import-key-pair ed25519 fingerprint" "want $want_fp got $got_fp"

id=$(aws ec2 describe-key-pairs --key-names imported --query 'KeyPairs[0].KeyPairId' --output text)
aws ec2 create-tags --resources "$id" --tags Key=env,Value=dev >/dev/null && ok "create-tags" || bad "create-tags"
expect "describe-key-pairs tag filter" "imported" \
  aws ec2 describe-key-pairs --filters Name=tag:env,Values=d?v --query 'KeyPairs[].KeyName' --output text
expect "describe-tags" "$id	env	dev" \
  aws ec2 describe-tags --query 'Tags[].[ResourceId,Key,Value]' --output text
expect_error "bad filter" InvalidParameterValue aws ec2 describe-key-pairs --filters Name=nope,Values=x
expect "delete-key-pair" "" aws ec2 delete-key-pair --key-name imported
expect_error "deleted key is gone" InvalidKeyPair.NotFound aws ec2 describe-key-pairs --key-names imported

# Security groups, in the default VPC.
sg=$(aws ec2 create-security-group --group-name web --description "web servers" --query GroupId --output text)
[[ $sg == sg-* ]] && ok "create-security-group" || bad "create-security-group" "$sg"
expect "authorize-security-group-ingress --port" "True" \
  aws ec2 authorize-security-group-ingress --group-id "$sg" --protocol tcp --port 22 --cidr 0.0.0.0/0 --query Return --output text
expect_error "duplicate rule" InvalidPermission.Duplicate \
  aws ec2 authorize-security-group-ingress --group-name web --protocol tcp --port 22 --cidr 0.0.0.0/0
expect "authorize-security-group-ingress --ip-permissions" "2" \
  aws ec2 authorize-security-group-ingress --group-id "$sg" --query 'length(SecurityGroupRules)' --output text \
  --ip-permissions '[{"IpProtocol":"tcp","FromPort":443,"ToPort":443,"IpRanges":[{"CidrIp":"10.0.0.0/8","Description":"office"},{"CidrIp":"192.168.0.0/16"}]}]'
q='SecurityGroups[].[GroupName,join(`,`,IpPermissions[?FromPort==`443`]|[0].IpRanges[].CidrIp)]'
expect "describe-security-groups --filters" "web	10.0.0.0/8,192.168.0.0/16" \
  aws ec2 describe-security-groups --filters Name=ip-permission.from-port,Values=443 --query "$q" --output text
rule=$(aws ec2 describe-security-group-rules --filters "Name=group-id,Values=$sg" \
  --query 'SecurityGroupRules[?FromPort==`22`].SecurityGroupRuleId' --output text)
expect "describe-security-group-rules" "4" \
  aws ec2 describe-security-group-rules --filters "Name=group-id,Values=$sg" --query 'length(SecurityGroupRules)' --output text
expect "revoke-security-group-ingress --security-group-rule-ids" "True" \
  aws ec2 revoke-security-group-ingress --group-id "$sg" --security-group-rule-ids "$rule" --query Return --output text
expect_error "revoked rule is gone" InvalidSecurityGroupRuleId.NotFound \
  aws ec2 describe-security-group-rules --security-group-rule-ids "$rule"
aws ec2 delete-security-group --group-id "$sg" >/dev/null && ok "delete-security-group" || bad "delete-security-group"
expect_error "deleted group is gone" InvalidGroup.NotFound aws ec2 describe-security-groups --group-ids "$sg"

expect "describe-instance-types c5.*" \
  "c5.12xlarge 48 98304
c5.18xlarge 72 147456
c5.24xlarge 96 196608
c5.2xlarge 8 16384
c5.4xlarge 16 32768
c5.9xlarge 36 73728
c5.large 2 4096
c5.metal 96 196608
c5.xlarge 4 8192" \
  bash -c "command aws --endpoint-url \"\$AWS_ENDPOINT_URL\" ec2 describe-instance-types --filters 'Name=instance-type,Values=c5.*' --query 'InstanceTypes[].[InstanceType,VCpuInfo.DefaultVCpus,MemoryInfo.SizeInMiB]' --output text | sort | tr '\t' ' '"

# Instances, with the CLI's own waiters.
image=$(aws ec2 describe-images --filters Name=name,Values=debian-12-minimal --query 'Images[0].ImageId' --output text)
ids=$(aws ec2 run-instances --image-id "$image" --instance-type t3.micro --count 2 --query 'Instances[].InstanceId' --output text)
[ "$(wc -w <<<"$ids")" = 2 ] && ok "run-instances --count 2" || bad "run-instances --count 2" "$ids"
# shellcheck disable=SC2086
aws ec2 wait instance-running --instance-ids $ids && ok "wait instance-running" || bad "wait instance-running"
first=${ids%%[[:space:]]*}
expect "console output" "yes" bash -c "command aws --endpoint-url \"\$AWS_ENDPOINT_URL\" ec2 get-console-output --instance-id $first --output text | grep 'nubo-init: ready' >/dev/null && echo yes"
# EC2 Instance Connect, on the same endpoint (service ec2-instance-connect, JSON 1.1).
expect "ec2-instance-connect send-ssh-public-key" "True" \
  aws ec2-instance-connect send-ssh-public-key --instance-id "$first" --instance-os-user admin --ssh-public-key "file://$dir/id.pub" --query Success --output text
expect_error "send-ssh-public-key, unknown instance" EC2InstanceNotFoundException \
  aws ec2-instance-connect send-ssh-public-key --instance-id i-0123456789abcdef0 --instance-os-user admin --ssh-public-key "file://$dir/id.pub"
aws ec2 stop-instances --instance-ids "$first" >/dev/null && aws ec2 wait instance-stopped --instance-ids "$first" \
  && ok "stop + wait instance-stopped" || bad "stop + wait instance-stopped"
expect_error "send-ssh-public-key, stopped instance" EC2InstanceStateInvalidException \
  aws ec2-instance-connect send-ssh-public-key --instance-id "$first" --instance-os-user admin --ssh-public-key "file://$dir/id.pub"
expect_error "unknown instance type" InvalidParameterValue aws ec2 run-instances --image-id "$image" --instance-type x9.huge --count 1
# shellcheck disable=SC2086
aws ec2 terminate-instances --instance-ids $ids >/dev/null && aws ec2 wait instance-terminated --instance-ids $ids \
  && ok "terminate + wait instance-terminated" || bad "terminate + wait instance-terminated"

# The whole launch a user does (Step 5): an RSA key pair (the e2e tests log
# in with ed25519) → a group opening 22 and
# 80 → run-instances with a user data script that serves a page → curl the
# public IP → ssh in as admin and ask the metadata service who it is.
aws ec2 create-key-pair --key-name web --query KeyMaterial --output text >"$dir/web.pem" && chmod 600 "$dir/web.pem"
sg=$(aws ec2 create-security-group --group-name web --description "web servers" --query GroupId --output text)
aws ec2 authorize-security-group-ingress --group-id "$sg" --protocol tcp --port 22 --cidr 0.0.0.0/0 >/dev/null &&
  aws ec2 authorize-security-group-ingress --group-id "$sg" --protocol tcp --port 80 --cidr 0.0.0.0/0 >/dev/null &&
  ok "security group opening 22 and 80" || bad "security group opening 22 and 80"
cat >"$dir/user-data.sh" <<'SCRIPT'
#!/bin/bash
mkdir -p /var/www && echo "hello from $(curl -s http://169.254.169.254/latest/meta-data/instance-id)" >/var/www/index.html
setsid nohup python3 -m http.server 80 --directory /var/www >/dev/null 2>&1 &
SCRIPT
web=$(aws ec2 run-instances --image-id "$image" --instance-type t3.micro --key-name web --security-group-ids "$sg" \
  --user-data "file://$dir/user-data.sh" --query 'Instances[0].InstanceId' --output text)
aws ec2 wait instance-running --instance-ids "$web"
ip=$(aws ec2 describe-instances --instance-ids "$web" --query 'Reservations[0].Instances[0].PublicIpAddress' --output text)
page=""
for _ in $(seq 1 100); do
  page=$(curl -s --max-time 1 "http://$ip/") && [ -n "$page" ] && break
  sleep 0.2
done
[ "$page" = "hello from $web" ] && ok "user data's web server through the public IP" || bad "user data's web server through the public IP" "got [$page]"
sshopts=(-i "$dir/web.pem" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5)
expect "ssh admin@public-ip, then the metadata service" "$web" \
  ssh "${sshopts[@]}" "admin@$ip" curl -s http://169.254.169.254/latest/meta-data/instance-id
expect "port 443 (no rule) times out" "timeout" \
  bash -c "curl -s --max-time 1 http://$ip:443/ >/dev/null; [ \$? = 28 ] && echo timeout"

# EBS (Step 6): an encrypted gp3 volume attached to the web server, formatted
# and mounted inside it by root, detached and deleted.
zone=$(aws ec2 describe-instances --instance-ids "$web" --query 'Reservations[0].Instances[0].Placement.AvailabilityZone' --output text)
vol=$(aws ec2 create-volume --availability-zone "$zone" --size 2 --volume-type gp3 --encrypted --query VolumeId --output text)
[[ $vol == vol-* ]] && ok "create-volume" || bad "create-volume" "$vol"
aws ec2 wait volume-available --volume-ids "$vol" && ok "wait volume-available" || bad "wait volume-available"
expect "describe-volumes" "gp3	3000	125	True	2" \
  aws ec2 describe-volumes --volume-ids "$vol" --query 'Volumes[0].[VolumeType,Iops,Throughput,Encrypted,Size]' --output text
expect_error "create-volume, gp3 throughput too high" InvalidParameterValue \
  aws ec2 create-volume --availability-zone "$zone" --size 2 --volume-type gp3 --throughput 2000
expect "attach-volume" "attaching" \
  aws ec2 attach-volume --volume-id "$vol" --instance-id "$web" --device /dev/sdf --query State --output text
aws ec2 wait volume-in-use --volume-ids "$vol" && ok "wait volume-in-use" || bad "wait volume-in-use"
for _ in $(seq 1 100); do
  [ "$(aws ec2 describe-volumes --volume-ids "$vol" --query 'Volumes[0].Attachments[0].State' --output text)" = attached ] && break
  sleep 0.1
done
expect "mkfs, mount and write inside the instance" "hello ebs" \
  ssh "${sshopts[@]}" "admin@$ip" 'sudo mkfs.ext4 -q /dev/sdf && sudo mount /dev/sdf /mnt && echo hello ebs | sudo tee /mnt/f >/dev/null && sudo umount /mnt && sudo mount /dev/sdf /mnt && cat /mnt/f'
expect_error "delete-volume while attached" VolumeInUse aws ec2 delete-volume --volume-id "$vol"
expect "detach-volume while mounted waits (busy)" "detaching" \
  aws ec2 detach-volume --volume-id "$vol" --query State --output text
ssh "${sshopts[@]}" "admin@$ip" sudo umount /mnt
aws ec2 wait volume-available --volume-ids "$vol" && ok "detached once unmounted" || bad "detached once unmounted"
expect "delete-volume" "" aws ec2 delete-volume --volume-id "$vol"

# ENIs (Step 7): a second card with a secondary address, attached to the web
# server as eth1 (seen inside, and in the metadata service), moved off it.
subnet=$(aws ec2 describe-instances --instance-ids "$web" --query 'Reservations[0].Instances[0].SubnetId' --output text)
expect "the instance's eth0 is an ENI" "0	attached" \
  aws ec2 describe-network-interfaces --filters "Name=attachment.instance-id,Values=$web" --query 'NetworkInterfaces[0].Attachment.[DeviceIndex,Status]' --output text
eni=$(aws ec2 create-network-interface --subnet-id "$subnet" --secondary-private-ip-address-count 1 --groups "$sg" \
  --description service --query NetworkInterface.NetworkInterfaceId --output text)
[[ $eni == eni-* ]] && ok "create-network-interface" || bad "create-network-interface" "$eni"
mac=$(aws ec2 describe-network-interfaces --network-interface-ids "$eni" --query 'NetworkInterfaces[0].MacAddress' --output text)
second=$(aws ec2 describe-network-interfaces --network-interface-ids "$eni" --query 'NetworkInterfaces[0].PrivateIpAddresses[?Primary==`false`].PrivateIpAddress' --output text)
expect_error "attach at device index 0" InvalidParameterValue \
  aws ec2 attach-network-interface --network-interface-id "$eni" --instance-id "$web" --device-index 0
att=$(aws ec2 attach-network-interface --network-interface-id "$eni" --instance-id "$web" --device-index 1 --query AttachmentId --output text)
[[ $att == eni-attach-* ]] && ok "attach-network-interface" || bad "attach-network-interface" "$att"
for _ in $(seq 1 100); do
  [ "$(aws ec2 describe-network-interfaces --network-interface-ids "$eni" --query 'NetworkInterfaces[0].Attachment.Status' --output text)" = attached ] && break
  sleep 0.1
done
expect "eth1 inside the instance, with its MAC and secondary address" "$mac yes" \
  ssh "${sshopts[@]}" "admin@$ip" "cat /sys/class/net/eth1/address | tr '\n' ' '; ip -4 -o addr show eth1 | grep -q ' $second/' && echo yes"
expect "eth1 in the metadata service" "1" \
  ssh "${sshopts[@]}" "admin@$ip" curl -s "http://169.254.169.254/latest/meta-data/network/interfaces/macs/$mac/device-number"
expect_error "delete-network-interface while attached" InvalidNetworkInterface.InUse aws ec2 delete-network-interface --network-interface-id "$eni"
aws ec2 detach-network-interface --attachment-id "$att" >/dev/null && aws ec2 wait network-interface-available --network-interface-ids "$eni" \
  && ok "detach + wait network-interface-available" || bad "detach + wait network-interface-available"
expect "eth1 gone from the instance" "gone" ssh "${sshopts[@]}" "admin@$ip" "test -e /sys/class/net/eth1 || echo gone"
expect "delete-network-interface" "" aws ec2 delete-network-interface --network-interface-id "$eni"
aws ec2 terminate-instances --instance-ids "$web" >/dev/null

# Placement groups (Step 8): a partition group, an instance in its partition
# 2 on a host (shown as EC2 shows it), the group refused deletion while the
# instance exists and deleted once it has terminated; a host-level spread group.
expect "create-placement-group --strategy partition --partition-count 3" "hdfs	partition	3	available" \
  aws ec2 create-placement-group --group-name hdfs --strategy partition --partition-count 3 \
  --query 'PlacementGroup.[GroupName,Strategy,PartitionCount,State]' --output text
expect "describe-placement-groups --group-names" "hdfs	partition	3	available" \
  aws ec2 describe-placement-groups --group-names hdfs --query 'PlacementGroups[0].[GroupName,Strategy,PartitionCount,State]' --output text
arn=$(aws ec2 describe-placement-groups --group-names hdfs --query 'PlacementGroups[0].GroupArn' --output text)
[[ $arn =~ ^arn:aws:ec2:us-east-1:[0-9]{12}:placement-group/hdfs$ ]] && ok "describe-placement-groups GroupArn" || bad "describe-placement-groups GroupArn" "$arn"
pgi=$(aws ec2 run-instances --image-id "$image" --instance-type t3.micro --placement GroupName=hdfs,PartitionNumber=2 \
  --query 'Instances[0].InstanceId' --output text)
[[ $pgi == i-* ]] && ok "run-instances --placement GroupName=hdfs,PartitionNumber=2" || bad "run-instances --placement GroupName=hdfs,PartitionNumber=2" "$pgi"
expect "describe-instances Placement.GroupName, PartitionNumber" "hdfs	2" \
  aws ec2 describe-instances --instance-ids "$pgi" --query 'Reservations[0].Instances[0].Placement.[GroupName,PartitionNumber]' --output text
host=$(aws ec2 describe-instances --instance-ids "$pgi" --query 'Reservations[0].Instances[0].Placement.HostId' --output text)
[[ $host == h-* ]] && ok "describe-instances Placement.HostId" || bad "describe-instances Placement.HostId" "$host"
expect_error "delete-placement-group while an instance is in it" InvalidPlacementGroup.InUse \
  aws ec2 delete-placement-group --group-name hdfs
aws ec2 terminate-instances --instance-ids "$pgi" >/dev/null && aws ec2 wait instance-terminated --instance-ids "$pgi" \
  && ok "terminate + wait instance-terminated (placement group)" || bad "terminate + wait instance-terminated (placement group)"
expect "delete-placement-group once its instance has terminated" "" aws ec2 delete-placement-group --group-name hdfs
expect_error "deleted placement group is gone" InvalidPlacementGroup.Unknown \
  aws ec2 describe-placement-groups --group-names hdfs
expect "create-placement-group --strategy spread --spread-level host" "spread	host	available" \
  aws ec2 create-placement-group --group-name apart --strategy spread --spread-level host \
  --query 'PlacementGroup.[Strategy,SpreadLevel,State]' --output text
expect "delete-placement-group (spread)" "" aws ec2 delete-placement-group --group-name apart

echo
echo "aws-cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
