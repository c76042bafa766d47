# Free ports on 127.0.0.1 for the test servers. Sourced by garage.sh and radosgw.sh.

_port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A random port below the kernel's ephemeral range: a port in that range that is free now
# can be taken by any outgoing connection (the tests make thousands) before the server
# binds it.
_random_port() {
    local low
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$low" -gt 12000 ] 2>/dev/null || low=32768
    echo $(( 10000 + RANDOM % (low - 10000 - 4) ))
}
