#!/bin/sh
# run-wwinit.d: the scripts of /warewulf/wwinit.d in name order, before
# the root file system takes its final place (disks get their partitions
# and file systems here). wwinit's /init runs it; so does upstream's
# dracut module, with PREFIX naming where it unpacked the system overlay.
# A failing script is reported and the others still run.
dir="${PREFIX}/warewulf/wwinit.d"
[ -d "$dir" ] || exit 0
for script in "$dir"/*; do
	[ -f "$script" ] || continue
	echo "wwinit: running $script"
	PREFIX=$PREFIX sh "$script" || echo "wwinit: $script failed with status $?"
done
