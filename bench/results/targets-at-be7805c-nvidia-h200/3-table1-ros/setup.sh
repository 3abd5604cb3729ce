# sourced: the ROS prefix (xz tarball of the installed ROS wheels) and pycuda into $PREFIX, the card into $OUT
tar xJf .whlros-xz/pfx.tar.xz -C $(dirname $PREFIX) || exit 1
P=$PREFIX; python3 -m pip install -q --no-index --no-deps --no-compile --prefix $P .whl/*.whl || exit 1
export PYTHONPATH=$PWD:$P/lib/python3.12/site-packages PATH=$P/bin:$PATH AMENT_PREFIX_PATH=$P _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export LD_LIBRARY_PATH=$P/lib:$(ls -d $P/lib/python3.12/site-packages/ros_*.libs | tr '\n' ':')$LD_LIBRARY_PATH
{ date -u; nvidia-smi; echo "cores: $(nproc)"; } > $OUT/card.txt
