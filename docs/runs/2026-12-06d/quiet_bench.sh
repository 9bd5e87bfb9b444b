#!/bin/bash
# Stops the background runs, runs the full benchmark table on the quiet machine, resumes them.
cd /work/main && . .venv/bin/activate
PIDS=$(pgrep -f "main.py --datasource|memory_remat.child|memory_remat.py|reproduce.py")
kill -STOP $PIDS; sleep 2
echo "start $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) commit $(git rev-parse --short HEAD)"
python scripts/benchmark.py a a_fo b c c_fo d --modes xla tf1 --repeats 7 --warmup 2 --no-flops --json logs/quiet_table.json --markdown logs/quiet_table.md
echo "mid $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
python scripts/benchmark.py d --modes xla xla_loop jax jax_scan tf1 --repeats 21 --warmup 3 --steps-per-execution 100 --no-flops --json logs/quiet_d.json --markdown logs/quiet_d.md
echo "end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
kill -CONT $PIDS
