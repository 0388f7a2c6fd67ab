#!/usr/bin/env bash
# trace_lo_traffic.sh: tcpdump on lo, to see that only handshakes and FINs cross it.
set -eu

usage() {
	cat <<USAGE
Usage: sudo ./trace_lo_traffic.sh [--port N]

Runs tcpdump on the loopback interface (TCP only, or one port). With
sockbypass loaded, a local connection shows its SYN, SYN-ACK, ACK and FIN
packets here and no payload: the data went from socket to socket.
Ctrl-C stops.

  --port N     only this TCP port
  -h, --help   this text
USAGE
}

filter="tcp"
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--port)
		if [ $# -lt 2 ] || ! [[ "$2" =~ ^[0-9]{1,5}$ ]] || [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then
			echo "Error: --port needs a port number (1-65535)" >&2
			exit 2
		fi
		filter="tcp port $2"; shift ;;
	*) echo "Error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done
command -v tcpdump >/dev/null || { echo "Error: tcpdump is missing: apt-get install tcpdump" >&2; exit 10; }
if [ "$(id -u)" != 0 ]; then
	echo "Error: capturing on lo needs root: run 'sudo ./trace_lo_traffic.sh'" >&2
	exit 3
fi
exec tcpdump -i lo -nn "$filter"
