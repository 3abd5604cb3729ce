# sourced by the run scripts: pycuda and the ROS wheels into a prefix, the card into $OUT
P=$PREFIX; python3 -m pip install -q --no-index --no-deps --no-compile --prefix $P .whl/*.whl .whlros/*.whl || exit 1
export PYTHONPATH=$PWD:$P/lib/python3.12/site-packages PATH=$P/bin:$PATH AMENT_PREFIX_PATH=$P _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export LD_LIBRARY_PATH=$P/lib:$(ls -d $P/lib/python3.12/site-packages/ros_*.libs | tr '\n' ':')$LD_LIBRARY_PATH
{ date -u; nvidia-smi; echo "cores: $(nproc)"; cat .trees/main/COMMIT; } > $OUT/card.txt
