"""Scoring model outputs: `posttrain score` (any scorer of posttrain/rewards by name, weighted;
preference pairs; rejection-sampling SFT data) and `posttrain reward-eval` (RewardBench-style
accuracy of a reward model). Pair selection lives in pairs.py as pure functions."""
