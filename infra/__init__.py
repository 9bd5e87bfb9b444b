"""What every learner runs on and none owns: TF1's Adam (adam), several steps per compiled call (loop),
tf.distribute (distribute), TF1 checkpoints (tf1_checkpoint), the checkpoints and run records
(checkpoints), the result files (results) and the training loop's periodic actions (actions)."""
