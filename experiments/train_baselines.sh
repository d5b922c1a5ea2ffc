#!/usr/bin/env bash
# Trains the shipped checkpoints (autoprune/checkpoints/). These exact commands
# produced the files in the repo; logs go to experiments/results/train_<model>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p experiments/results
autoprune train --model resnet20 --data fashion-mnist --epochs 15 --seed 0 \
  --out autoprune/checkpoints/resnet20_fashion-mnist.pt 2>&1 | tee experiments/results/train_resnet20.log
autoprune train --model vgg11 --data fashion-mnist --epochs 10 --seed 0 \
  --out autoprune/checkpoints/vgg11_fashion-mnist.pt 2>&1 | tee experiments/results/train_vgg11.log
autoprune train --model mobilenetv2 --data fashion-mnist --epochs 12 --seed 0 \
  --out autoprune/checkpoints/mobilenetv2_fashion-mnist.pt 2>&1 | tee experiments/results/train_mobilenetv2.log
# A small digits checkpoint (scikit-learn's 8x8 digits), so searches and sweeps on digits run out of the box.
autoprune train --model resnet20 --data digits --epochs 15 --seed 0 \
  --out autoprune/checkpoints/resnet20_digits.pt 2>&1 | tee experiments/results/train_resnet20_digits.log
