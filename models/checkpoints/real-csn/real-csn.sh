#!/bin/bash
# Background CSN training on the real-structure peak shards (issue 11, section 3).
cd /work/main
echo $$ > /work/runs/real-csn.pid  # the process group (setsid) of the run
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
date -u +"start %FT%TZ"
csn train --dataset /work/datasets/real/peaks --out /work/runs/real-csn --architecture csn --grid-step 0.1 \
    --steps 1000000 --max-minutes 90 --batch-size 128 --lr 2e-3 --balance logit-adjust --val-every 250 \
    --threads 1 --seed 0
date -u +"done %FT%TZ"
