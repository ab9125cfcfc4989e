#!/bin/sh
# The test appends to this file: only this step may run again.
echo "seen: early=$(cat /var/tmp/early) middle=$(cat /var/tmp/middle)"
echo "last: $(tail -n 1 "$0")"
