#!/bin/bash
# tears down .scratch/scale-keep.ts's setup
j=/tmp/scalekeep.json
base=$(python3 -c "import json;print(json.load(open('$j'))['base'])")
vol=$(python3 -c "import json;print(json.load(open('$j'))['vol'])")
for p in $(python3 -c "import json;print(' '.join(str(n['pid']) for n in json.load(open('$j'))['nodes']))"); do kill -9 $p 2>/dev/null; done
sleep 1
awk -v b="$base" '$2 ~ "^"b {print $2}' /proc/mounts | sort -r | while read m; do umount -l "$m"; done
awk -v v="$vol" 'index($1, v) {print $2}' /proc/mounts | sort -r | while read m; do umount -l "$m"; done
gluster --mode=script volume stop $vol force >/dev/null; gluster --mode=script volume delete $vol >/dev/null
rm -rf "$base"
echo cleaned $base $vol
