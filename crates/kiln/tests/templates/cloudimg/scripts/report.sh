# The second of `scripts`: same environment, same command. The scripts of
# earlier provisioners are gone from /tmp; this one is still there.
echo "report: $(id -un) sees FLAVOUR=$FLAVOUR in $0"
echo "report: scripts in /tmp: $(ls /tmp | grep '^script_' | tr '\n' ' ')"
