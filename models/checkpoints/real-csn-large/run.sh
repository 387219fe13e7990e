#!/bin/sh
cd "$(dirname "$0")/../../.."  # the checkout
exec nice -n 5 csn train --dataset /work/datasets/real/peaks --out /work/runs/real-csn-large --architecture csn --grid-step 0.1 --net-config '{"dim": 192, "gau_layers": 4, "gau_key_dim": 96, "stem_channels": [32, 96, 192]}' --render '{"intensity_jitter": 0.4}' --steps 1000000 --max-minutes 600 --batch-size 128 --lr 2e-3 --balance logit-adjust --val-every 250 --threads 1 --seed 0
