#!/bin/sh
# Sysctls every script in tests/pkt assumes, so that the kernel (synack drill
# --kernel) and synack start from the same settings. In simulation synack reads
# these lines instead of running them.
sysctl -q net.ipv4.tcp_rmem="4096 540000 15728640"
sysctl -q net.ipv4.tcp_wmem="4096 262144 4194304"
sysctl -q net.ipv4.tcp_timestamps=1
sysctl -q net.ipv4.tcp_sack=1
sysctl -q net.ipv4.tcp_window_scaling=1
sysctl -q net.ipv4.tcp_syn_retries=5
sysctl -q net.ipv4.tcp_synack_retries=5
sysctl -q net.ipv4.tcp_syncookies=1
sysctl -q net.ipv4.tcp_ecn=0
sysctl -q net.ipv4.tcp_fastopen=0
sysctl -q net.ipv4.tcp_slow_start_after_idle=0
