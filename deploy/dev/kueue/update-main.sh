#!/usr/bin/env bash
# Regenerates main.go from the Kueue module go.mod requires: upstream cmd/kueue/main.go with the
# metrics certificate directory read from $KUEUE_METRICS_CERT_DIR (upstream hard-codes
# /etc/kueue/metrics/certs when internal certificate management is off). Fails if upstream's
# line changed, so a version bump cannot silently drop the patch.
set -euo pipefail
cd "$(dirname "$0")"
ver="$(awk '$1=="sigs.k8s.io/kueue" {print $2; exit}' go.mod)"
[[ -n "$ver" ]] || ver="$(awk '$1=="require" && $2=="sigs.k8s.io/kueue" {print $3}' go.mod)"
dir="$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kueue@$ver" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
src="$dir/cmd/kueue/main.go"
old='		metricsCertPath := "/etc/kueue/metrics/certs"'
[[ "$(grep -cxF -- "$old" "$src")" == 1 ]] || { echo "update-main.sh: $src no longer has: $old" >&2; exit 1; }
awk -v ver="$ver" -v old="$old" '
	/^package main$/ && !done_pkg {
		print "// Command kueue is the upstream Kueue controller manager, sigs.k8s.io/kueue/cmd/kueue " ver ","
		print "// built in a module of its own for ebbflow'"'"'s integration tests (deploy/dev/kueue.sh). The file is"
		print "// upstream'"'"'s main.go with one change, marked \"ebbflow-dev\" below. Regenerate it with"
		print "// deploy/dev/kueue/update-main.sh after changing the Kueue version in go.mod."
		print; done_pkg = 1; next
	}
	/^import \($/ && !done_imp { print; print "\t\"cmp\""; done_imp = 1; next }
	$0 == old {
		print "\t\t// ebbflow-dev: the metrics certificate directory comes from KUEUE_METRICS_CERT_DIR"
		print "\t\t// (upstream hard-codes the path, which a process outside a container cannot use)."
		print "\t\tmetricsCertPath := cmp.Or(os.Getenv(\"KUEUE_METRICS_CERT_DIR\"), \"/etc/kueue/metrics/certs\")"
		next
	}
	{ print }
' "$src" >main.go.tmp
gofmt main.go.tmp >main.go
rm -f main.go.tmp
echo "main.go regenerated from $src"
