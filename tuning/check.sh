#!/usr/bin/env bash
# check.sh: compare this host with what Aegis Gateway needs for 100k+ agents.
#
# Read-only, needs no root, runs in well under 5 s. Prints one line per setting:
#   OK       <setting>  have X, want Y
#   SHORT    <setting>  have X, want Y      (the host falls short of the recommendation)
#   UNKNOWN  <setting>  why it could not be read
# and exits 0 when every line is OK, 1 otherwise.
#
# What it compares:
#   - every sysctl set in sysctl.d/90-aegis-gateway.conf (next to this script), read from /proc/sys;
#     nf_conntrack_max too when the conntrack module is loaded;
#   - this shell's `ulimit -n` / `ulimit -l` (what a gateway started from here gets) and, when an
#     aegis-gateway process is running, its own limits from /proc/PID/limits;
#   - kernel >= 5.8, io_uring present and allowed (kernel.io_uring_disabled).
#
# Inputs (environment, all optional):
#   MAX_CONNECTIONS   planned agent connections (default 100000): nofile wants this + 4096
#   SHARDS            planned shards (default: this host's cores): memlock wants 6.25 MiB each
#                     (256 KiB with THP never or MIMALLOC_ALLOW_THP=0), at least 512 KiB
#   AEGIS_SYSCTL_CONF the sysctl file to compare with (default: next to this script)
#   AEGIS_PID         the gateway process to inspect (default: found by name)
set -u

FAILED=0

# report STATUS NAME DETAIL: one aligned line; anything but OK makes the exit status 1.
report() {
    printf '%-8s %-36s %s\n' "$1" "$2" "$3"
    [ "$1" = OK ] || FAILED=1
}

# is_uint VALUE: true for a non-empty string of digits.
is_uint() {
    [[ ${1-} =~ ^[0-9]+$ ]]
}

# ge A B: A >= B for unsigned decimal strings of any length (no 64-bit overflow: fs.file-max can
# be LONG_MAX and some limits are 2^64-1). "unlimited" / "infinity" is larger than any number.
ge() {
    local a=$1 b=$2
    case $a in unlimited | infinity) return 0 ;; esac
    case $b in unlimited | infinity) return 1 ;; esac
    a=${a#"${a%%[!0]*}"}
    b=${b#"${b%%[!0]*}"}
    if [ ${#a} -ne ${#b} ]; then
        [ ${#a} -gt ${#b} ]
        return
    fi
    [[ $a > $b || $a == "$b" ]]
}

# words TEXT: TEXT with runs of blanks squeezed to one space, trimmed.
words() {
    local w out=""
    for w in $1; do out+="${out:+ }$w"; done
    printf '%s' "$out"
}

# ports_contain HAVE WANT: every port or range of the comma list WANT is covered by HAVE.
ports_contain() {
    local have=$1 want=$2 item lo hi h hlo hhi covered
    local IFS=,
    for item in $want; do
        lo=${item%-*}
        hi=${item#*-}
        is_uint "$lo" && is_uint "$hi" || return 1
        covered=0
        for h in $have; do
            hlo=${h%-*}
            hhi=${h#*-}
            if ! is_uint "$hlo" || ! is_uint "$hhi"; then continue; fi
            if ge "$lo" "$hlo" && ge "$hhi" "$hi"; then covered=1; fi
        done
        [ "$covered" = 1 ] || return 1
    done
    return 0
}

# compare_sysctl KEY WANT HAVE: prints the line for one sysctl. The direction of "enough" depends
# on the key (see the comments in the sysctl file).
compare_sysctl() {
    local key=$1 want=$2 have=$3 ok=1 mode i
    local -a w h
    read -r -a w <<<"$want"
    read -r -a h <<<"$have"
    case $key in
        net.ipv4.ip_local_port_range) mode=range ;;
        net.ipv4.ip_local_reserved_ports) mode=ports ;;
        net.ipv4.tcp_rmem | net.ipv4.tcp_wmem) mode=buf ;;
        net.ipv4.tcp_fin_timeout | net.ipv4.tcp_keepalive_*) mode=max ;;
        net.ipv4.tcp_tw_reuse | net.ipv4.tcp_slow_start_after_idle) mode=eq ;;
        *) mode=min ;;
    esac
    local shown="want >= $want"
    case $mode in
        range)
            shown="want low <= ${w[0]-?}, high >= ${w[1]-?}"
            if [ ${#w[@]} -ne 2 ] || [ ${#h[@]} -ne 2 ] || ! is_uint "${h[0]}" || ! is_uint "${h[1]}"; then
                ok=0
            elif ! ge "${w[0]}" "${h[0]}" || ! ge "${h[1]}" "${w[1]}"; then
                ok=0
            fi
            ;;
        ports)
            shown="want it to include $want"
            ports_contain "$have" "$want" || ok=0
            ;;
        buf)
            shown="want initial <= ${w[1]-?}, max >= ${w[2]-?}"
            if [ ${#w[@]} -ne 3 ] || [ ${#h[@]} -ne 3 ]; then
                ok=0
            elif ! is_uint "${h[1]}" || ! is_uint "${h[2]}"; then
                ok=0
            elif ! ge "${w[1]}" "${h[1]}" || ! ge "${h[2]}" "${w[2]}"; then
                ok=0
            fi
            ;;
        max)
            shown="want <= $want"
            if [ ${#h[@]} -ne 1 ] || ! is_uint "${h[0]}" || ! ge "$want" "${h[0]}"; then ok=0; fi
            ;;
        eq)
            shown="want $want"
            [ "$have" = "$want" ] || ok=0
            ;;
        min)
            if [ ${#w[@]} -ne ${#h[@]} ]; then
                ok=0
            else
                for i in "${!w[@]}"; do
                    if is_uint "${w[$i]}"; then
                        is_uint "${h[$i]}" && ge "${h[$i]}" "${w[$i]}" || ok=0
                    else
                        [ "${h[$i]}" = "${w[$i]}" ] || ok=0
                    fi
                done
            fi
            ;;
    esac
    if [ "$ok" = 1 ]; then
        report OK "$key" "have ${have:-(empty)}, $shown"
    else
        report SHORT "$key" "have ${have:-(empty)}, $shown"
    fi
}

# read_sysctl KEY: the value from /proc/sys, blanks squeezed; fails when it cannot be read.
read_sysctl() {
    local path="/proc/sys/${1//.//}" value
    [ -r "$path" ] || return 1
    value=$(<"$path") 2>/dev/null || return 1
    words "$value"
}

check_sysctls() {
    local conf=$1 line key value have seen=0
    if [ ! -r "$conf" ]; then
        report UNKNOWN "sysctl file" "cannot read $conf (set AEGIS_SYSCTL_CONF)"
        return
    fi
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%$'\r'}
        # Optional keys, commented out in the file because they exist only with their module.
        if [[ $line =~ ^#[[:space:]]*(net\.netfilter\.[a-z0-9_.]+)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
            key=${BASH_REMATCH[1]}
            value=$(words "${BASH_REMATCH[2]}")
            if have=$(read_sysctl "$key"); then
                compare_sysctl "$key" "$value" "$have"
            else
                report OK "$key" "not present (module not loaded), want >= $value when it is"
            fi
            continue
        fi
        [[ $line =~ ^[[:space:]]*-?([a-z0-9_.-]+)[[:space:]]*=[[:space:]]*(.*)$ ]] || continue
        key=${BASH_REMATCH[1]}
        value=$(words "${BASH_REMATCH[2]}")
        seen=$((seen + 1))
        if have=$(read_sysctl "$key"); then
            compare_sysctl "$key" "$value" "$have"
        else
            report UNKNOWN "$key" "cannot read /proc/sys/${key//.//} (want $value)"
        fi
    done <"$conf"
    [ "$seen" -gt 0 ] || report UNKNOWN "sysctl file" "no settings found in $conf"
}

# thp_charged: true when glommio's io_memory will sit in a transparent huge page: THP is not
# "never" (mimalloc madvises its arenas, so "madvise" counts too) and mimalloc's THP use is not
# switched off with MIMALLOC_ALLOW_THP=0.
thp_charged() {
    local f=/sys/kernel/mm/transparent_hugepage/enabled
    case ${MIMALLOC_ALLOW_THP-} in 0 | false | off | no) return 1 ;; esac
    [ -r "$f" ] && [[ $(<"$f") != *"[never]"* ]]
}

# check_limit NAME HAVE WANT UNIT NOTE: one line for a resource limit.
check_limit() {
    local name=$1 have=$2 want=$3 unit=$4 note=$5
    if ! is_uint "$have" && [ "$have" != unlimited ]; then
        report UNKNOWN "$name" "cannot read the limit ($have)"
    elif ge "$have" "$want"; then
        report OK "$name" "have $have$unit, want >= $want$unit ($note)"
    else
        report SHORT "$name" "have $have$unit, want >= $want$unit ($note)"
    fi
}

# find_gateway: pid of a running aegis-gateway (first match), empty if none.
find_gateway() {
    local comm name
    for comm in /proc/[0-9]*/comm; do
        # A process can exit between the glob and the read: skip it quietly.
        { read -r name <"$comm"; } 2>/dev/null || continue
        if [ "$name" = aegis-gateway ]; then
            comm=${comm#/proc/}
            printf '%s' "${comm%/comm}"
            return
        fi
    done
}

# proc_limit PID PREFIX: soft limit of the row of /proc/PID/limits starting with PREFIX.
proc_limit() {
    local line
    [ -r "/proc/$1/limits" ] || return 1
    while IFS= read -r line; do
        if [[ $line == "$2"* ]]; then
            line=${line#"$2"}
            words "$line" | cut -d' ' -f1
            return 0
        fi
    done <"/proc/$1/limits"
    return 1
}

check_limits() {
    local conns=$1 shards=$2 nofile_want=$(($1 + 4096)) per_shard=256 thp="THP off"
    if thp_charged; then
        per_shard=6400
        thp="THP on: 2 MiB pages"
    fi
    local memlock_want=$((shards * per_shard))
    [ "$memlock_want" -ge 512 ] || memlock_want=512
    local nofile_note="MAX_CONNECTIONS $conns + 4096"
    local memlock_note="$shards shards x $per_shard KiB, $thp, min 512 KiB"

    check_limit nofile "$(ulimit -Sn 2>/dev/null || echo '?')" "$nofile_want" "" "$nofile_note; ulimit -n of this shell"
    check_limit memlock "$(ulimit -Sl 2>/dev/null || echo '?')" "$memlock_want" " KiB" "$memlock_note; ulimit -l of this shell"

    local pid=${AEGIS_PID:-$(find_gateway)} value
    [ -n "$pid" ] || return 0
    if value=$(proc_limit "$pid" "Max open files"); then
        check_limit "nofile (pid $pid)" "$value" "$nofile_want" "" "$nofile_note; running gateway"
    else
        report UNKNOWN "nofile (pid $pid)" "cannot read /proc/$pid/limits"
    fi
    if value=$(proc_limit "$pid" "Max locked memory"); then
        is_uint "$value" && value=$((value / 1024))
        check_limit "memlock (pid $pid)" "$value" "$memlock_want" " KiB" "$memlock_note; running gateway"
    else
        report UNKNOWN "memlock (pid $pid)" "cannot read /proc/$pid/limits"
    fi
}

check_kernel() {
    local release major minor rest
    release=$(uname -r 2>/dev/null || echo unknown)
    major=${release%%.*}
    rest=${release#*.}
    minor=${rest%%[!0-9]*}
    if ! is_uint "$major" || ! is_uint "$minor"; then
        report UNKNOWN kernel "cannot parse the release \"$release\", want >= 5.8"
    elif [ "$major" -gt 5 ] || { [ "$major" -eq 5 ] && [ "$minor" -ge 8 ]; }; then
        report OK kernel "have $release, want >= 5.8"
    else
        report SHORT kernel "have $release, want >= 5.8 (glommio's io_uring needs)"
    fi
}

check_io_uring() {
    local name=io_uring disabled group note=""
    local seccomp
    seccomp=$(grep -s '^Seccomp:' /proc/self/status | cut -f2)
    if [ "${seccomp:-0}" = 2 ]; then
        note="; this shell runs under a seccomp filter: a container profile may still block io_uring"
    fi
    if [ -r /proc/sys/kernel/io_uring_disabled ]; then
        disabled=$(</proc/sys/kernel/io_uring_disabled)
        case $disabled in
            0) report OK "$name" "kernel.io_uring_disabled = 0 (enabled for all)$note" ;;
            1)
                group=$(cat /proc/sys/kernel/io_uring_group 2>/dev/null || echo -1)
                report SHORT "$name" "have kernel.io_uring_disabled = 1, want 0, or the service user in kernel.io_uring_group ($group) via SupplementaryGroups=$note"
                ;;
            *) report SHORT "$name" "have kernel.io_uring_disabled = $disabled, want 0 (2 = disabled for everyone)" ;;
        esac
    elif [ -r /proc/kallsyms ] && grep -q 'io_uring_setup' /proc/kallsyms 2>/dev/null; then
        report OK "$name" "io_uring_setup in /proc/kallsyms (kernel has no io_uring_disabled switch)$note"
    elif [ -r "/boot/config-$(uname -r)" ]; then
        if grep -q '^CONFIG_IO_URING=y' "/boot/config-$(uname -r)"; then
            report OK "$name" "CONFIG_IO_URING=y$note"
        else
            report SHORT "$name" "have no CONFIG_IO_URING=y in /boot/config-$(uname -r), want io_uring"
        fi
    else
        report UNKNOWN "$name" "cannot tell whether the kernel has io_uring (no io_uring_disabled, kallsyms, or /boot/config)"
    fi
}

main() {
    case ${1-} in
        -h | --help)
            sed -n '2,/^set -u$/p' "$0" | sed '$d; s/^# \{0,1\}//'
            return 0
            ;;
    esac
    local here conf conns shards
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" 2>/dev/null && pwd) || here=.
    conf=${AEGIS_SYSCTL_CONF:-$here/sysctl.d/90-aegis-gateway.conf}
    conns=${MAX_CONNECTIONS:-100000}
    if ! is_uint "$conns" || [ ${#conns} -gt 9 ]; then
        report UNKNOWN MAX_CONNECTIONS "not a number: \"$conns\"; using 100000"
        conns=100000
    fi
    shards=${SHARDS:-auto}
    if [ "$shards" = auto ] || ! is_uint "$shards" || [ ${#shards} -gt 3 ]; then
        shards=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
        is_uint "$shards" || shards=1
    fi

    check_kernel
    check_io_uring
    check_limits "$conns" "$shards"
    check_sysctls "$conf"
    return "$FAILED"
}

main "$@"
exit $?
