#!/usr/bin/env bash
# Trains the shipped Fashion-MNIST checkpoints (autoprune/checkpoints/). These exact commands
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
