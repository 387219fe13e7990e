#!/bin/bash
# Resume the real-structure CSN (issue 11) with 2 threads and a cosine schedule ending at 165 training minutes.
cd /work/main
echo $$ > /work/runs/real-csn.pid
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
date -u +"start %FT%TZ"
csn train --dataset /work/datasets/real/peaks --out /work/runs/real-csn --architecture csn --grid-step 0.1 \
    --steps 1000000 --max-minutes 165 --batch-size 128 --lr 2e-3 --balance logit-adjust --val-every 250 \
    --threads 2 --seed 0
date -u +"done %FT%TZ"
