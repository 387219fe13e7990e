#!/bin/bash
# After the store build (pid $1) ends: peak shards (2 workers) until >= 25,600 items exist, then
# start the background training run, then finish the shards with 1 worker (training is running).
cd /work/main
echo $$ > /work/runs/real-pipeline.pid
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
while kill -0 "$1" 2>/dev/null; do sleep 15; done
date -u +"store build ended %FT%TZ"
[ -f /work/datasets/real/splits.json ] || { echo "no splits.json: the build failed"; exit 1; }
SHARDS="csn real shards --store /work/datasets/real --variants 4 --val-items 512 --random-every 10 --seed 0"
$SHARDS --workers 2 --limit 14 || exit 1
date -u +"first shards done %FT%TZ; starting training"
setsid nohup nice -n 5 /work/runs/real-csn.sh > /work/runs/real-csn.log 2>&1 < /dev/null &
$SHARDS --workers 1
date -u +"all shards done %FT%TZ"
