# on the CPU machine, timed stand-in engine; two passes, the read paces in turn
for pass in 1 2; do for cams in 256 384; do for t in 0 100 300 1000; do
  python3 bench/worker_profile.py --engine timed --cameras $cams --seconds 3 --read-every-us $t \
      --out bench/results/read-batching-cpu/p$pass-c$cams-t$t > bench/results/read-batching-cpu/p$pass-c$cams-t$t.txt 2>&1
done; done; done
