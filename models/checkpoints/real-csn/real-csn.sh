#!/bin/bash
# Session 5: the real-structure CSN trains on (warm restart to 240 training minutes) while the shard build finishes.
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
date -u +"train start %FT%TZ"
nice -n 5 csn train --dataset /work/datasets/real/peaks --out /work/runs/real-csn --architecture csn --grid-step 0.1 \
    --steps 1000000 --max-minutes 240 --batch-size 128 --lr 2e-3 --balance logit-adjust --val-every 250 \
    --threads 1 --seed 0
date -u +"train done %FT%TZ"
