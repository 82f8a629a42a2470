#!/usr/bin/env bash
# build.sh -- the one entry point of Bifrost-C: deps, vendor, build, run, test, bench.
#
#   ./build.sh            deps (build) + vendor + dist/bifrost
#   ./build.sh help       everything else
#
# Third-party code (liburing, BearSSL, jsmn, SQLite) comes from Debian *source* packages,
# fetched with apt's own client through a private apt directory under vendor/.apt
# (the host's apt configuration is never touched), and every tarball is checked
# against the sha256 pinned below. The libraries are built twice: with musl-gcc for
# the static release binary (vendor/musl) and with the host gcc for the unit tests,
# which link glibc + Criterion + ASan/UBSan (vendor/host).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

# ---------------------------------------------------------------------------
# Knobs. Edit here (or override from the environment).
# ---------------------------------------------------------------------------
MUSL_CC=${MUSL_CC:-musl-gcc}
HOST_CC=${HOST_CC:-gcc}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

# The release binary: static, musl.
BIN_CFLAGS=${BIN_CFLAGS:-"-std=gnu11 -O2 -g0 -static -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE"}
BIN_CPPFLAGS=${BIN_CPPFLAGS:-"-isystem vendor/uapi/include -Ivendor/musl/include"}
BIN_LDFLAGS=${BIN_LDFLAGS:-"-Lvendor/musl/lib"}
BIN_LIBS=${BIN_LIBS:-"-luring -lbearssl -lsqlite3 -lpthread -lm"}

# Unit tests: host gcc (glibc) + Criterion + sanitizers. Each tests/unit/X.c does
# #include "../../bifrost.c" and is compiled with -DBIFROST_TEST (no main).
TEST_CFLAGS=${TEST_CFLAGS:-"-std=gnu11 -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -D_GNU_SOURCE -DBIFROST_TEST"}
TEST_CPPFLAGS=${TEST_CPPFLAGS:-"-Ivendor/host/include"}
TEST_LDFLAGS=${TEST_LDFLAGS:-"-Lvendor/host/lib"}
TEST_LIBS=${TEST_LIBS:-"-luring -lbearssl -lsqlite3 -lm"}

# Flags for the vendored libraries themselves.
VENDOR_MUSL_CFLAGS=${VENDOR_MUSL_CFLAGS:-"-O2"}
VENDOR_HOST_CFLAGS=${VENDOR_HOST_CFLAGS:-"-O2 -fPIC -g"}
# What the host-built binaries (unit, fuzz, ASan) are rebuilt after.
HOST_LIB_DEPS="vendor/host/lib/liburing.a vendor/host/lib/libbearssl.a vendor/host/lib/libsqlite3.a"

# Pinned third-party sources: source package, preferred Debian version, the
# .orig tarball and its sha256. The sha256 is what is trusted: if the preferred
# Debian revision has left the archive, any revision shipping the very same
# .orig tarball (same name, same sha256) is used instead.
VENDOR_PINS=(
	"liburing 2.9-1        liburing_2.9.orig.tar.gz       57e9b36e4ac1e46b8e0351dfb1694dc59638fc25e384b4ba36d87b800b16db1a"
	"bearssl  0.6+dfsg.1-3 bearssl_0.6+dfsg.1.orig.tar.xz 102a625bd8f6155260867a50c508df8d8c3f796985dd744df1a68e5cd1a79004"
	"jsmn     1.1.0-2      jsmn_1.1.0.orig.tar.gz         5f0913a10657fe7ec8d5794ccf00a01000e3e1f2f1e1f143c34a0f7b47edcb38"
	"sqlite3  3.40.1-2+deb12u2 sqlite3_3.40.1.orig.tar.xz aaa776260ab4dc976db34aa7891819484c8676b5b2783123ebc6301e2ca5d655"
)
# Where apt looks for them (deb-src only; bookworm = Debian 12, trixie = Debian 13).
APT_MIRROR=${APT_MIRROR:-http://deb.debian.org/debian}
APT_SUITES=${APT_SUITES:-"bookworm trixie"}
APT_KEYRING=${APT_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}

VENDOR=$ROOT/vendor
DL=$VENDOR/dl
APTDIR=$VENDOR/.apt
STAMPS=$VENDOR/.stamps
LOGS=$VENDOR/logs

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
log()  { printf '==> %s\n' "$*" >&2; }
warn() { printf 'build.sh: warning: %s\n' "$*" >&2; }
die()  { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

# Run "$@" with its output going to a log file; on failure show the tail.
logged() {
	local logf=$1; shift
	mkdir -p "$(dirname "$logf")"
	if ! "$@" >"$logf" 2>&1; then
		printf 'build.sh: command failed: %s\n--- last lines of %s ---\n' "$*" "$logf" >&2
		tail -n 40 "$logf" >&2
		exit 1
	fi
}

# True if target $1 is missing or any later argument (file) is newer than it.
needs_rebuild() {
	local target=$1 dep; shift
	[[ -e $target ]] || return 0
	for dep in "$@"; do
		[[ -e $dep && $dep -nt $target ]] && return 0
	done
	return 1
}

SUDO=
if [[ $(id -u) -ne 0 ]]; then
	SUDO=sudo
fi

# ---------------------------------------------------------------------------
# deps: Debian packages. No apt call at all when everything is present.
# ---------------------------------------------------------------------------
pkg_installed() {
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# apt_install PKG...: install the ones not installed yet. `apt-get update` is run
# only if the first install attempt fails (e.g. empty or stale package lists).
apt_install() {
	local p missing=()
	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	if [[ -n $SUDO ]] && ! command -v sudo >/dev/null; then
		die "need root (or sudo) to install: ${missing[*]}"
	fi
	log "apt-get install ${missing[*]}"
	local apt=()
	[[ -z $SUDO ]] || apt+=("$SUDO")
	apt+=(env DEBIAN_FRONTEND=noninteractive apt-get -q)
	if ! "${apt[@]}" install -y --no-install-recommends "${missing[@]}"; then
		log "install failed; running apt-get update and retrying"
		"${apt[@]}" update
		"${apt[@]}" install -y --no-install-recommends "${missing[@]}"
	fi
}

deps_build() {
	# tcl: SQLite's build makes its amalgamation (sqlite3.c) with tclsh
	apt_install musl-tools linux-libc-dev gcc make xz-utils ca-certificates openssl curl tcl
}

deps_test() {
	# prometheus: its promtool checks /metrics in the integration tests; python3: the lint;
	# chromium: the web UI's tests drive it (puppeteer-core); redis-server: the cluster tests
	apt_install libcriterion-dev pkg-config prometheus python3 chromium redis-server
	if ! command -v node >/dev/null; then
		apt_install nodejs npm
	fi
}

deps_bench() {
	local pkgs=(wrk nghttp2-client redis-server) # redis-server: the cluster row
	if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
		# Debian 12 has nginx-light; Debian 13 folded it into nginx.
		if apt-cache show nginx-light >/dev/null 2>&1; then pkgs+=(nginx-light); else pkgs+=(nginx); fi
	fi
	apt_install "${pkgs[@]}"
}

# ---------------------------------------------------------------------------
# vendor: fetch (apt, private config) + verify (sha256) + build (musl and host)
# ---------------------------------------------------------------------------
pin_field() { # pin_field NAME FIELD(1..4)
	local line f
	for line in "${VENDOR_PINS[@]}"; do
		read -r -a f <<<"$line"
		if [[ ${f[0]} == "$1" ]]; then
			echo "${f[$(($2 - 1))]}"
			return 0
		fi
	done
	die "no pin named $1"
}

sha_ok() { # sha_ok FILE SHA256
	[[ -f $1 ]] && [[ $(sha256sum "$1" | cut -d' ' -f1) == "$2" ]]
}

APT_OPTS=()
apt_private_setup() {
	mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache" "$APTDIR/etc/preferences.d"
	[[ -r $APT_KEYRING ]] || die "apt keyring $APT_KEYRING missing (install debian-archive-keyring)"
	local s
	: >"$APTDIR/etc/sources.list.new"
	for s in $APT_SUITES; do
		echo "deb-src [signed-by=$APT_KEYRING] $APT_MIRROR $s main" >>"$APTDIR/etc/sources.list.new"
	done
	mv "$APTDIR/etc/sources.list.new" "$APTDIR/etc/sources.list"
	# Everything apt reads or writes for this lives under vendor/.apt, except the
	# host's apt.conf (kept on purpose: it may hold a proxy) and dpkg's status.
	APT_OPTS=(
		-o "Dir::Etc::sourcelist=$APTDIR/etc/sources.list"
		-o "Dir::Etc::sourceparts=-"
		-o "Dir::Etc::preferences=$APTDIR/etc/preferences"
		-o "Dir::Etc::preferencesparts=$APTDIR/etc/preferences.d"
		-o "Dir::State::Lists=$APTDIR/lists"
		-o "Dir::Cache=$APTDIR/cache"
		-o "Dir::Cache::pkgcache="
		-o "Dir::Cache::srcpkgcache="
		-o "Acquire::Languages=none"
		-o "APT::Default-Release="
	)
}

apt_private_update() {
	log "apt-get update (private source lists: $APT_SUITES)"
	if ! apt-get -q "${APT_OPTS[@]}" update >"$LOGS/apt-update.log" 2>&1 \
		|| grep -qE '^(W|E): .*(NO_PUBKEY|EXPKEYSIG|BADSIG|is not signed)' "$LOGS/apt-update.log"; then
		cat "$LOGS/apt-update.log" >&2
		die "private 'apt-get update' failed (see above). If it is a signature error, $APT_KEYRING lacks the keys of one of: $APT_SUITES (update the debian-archive-keyring package, or set APT_KEYRING)."
	fi
}

# Choose the Debian source version that ships FILE with SHA: the preferred one if
# it does, otherwise any other.
apt_pick_version() { # NAME PREFERRED FILE SHA
	local versions
	versions=$(apt-cache "${APT_OPTS[@]}" showsrc --only-source "$1" 2>/dev/null |
		awk -v f="$3" -v s="$4" '/^Package:/{v=""} /^Version:/{v=$2} $1==s && $3==f && v!=""{print v}' | sort -u)
	if grep -qxF -- "$2" <<<"$versions"; then
		echo "$2"
	elif [[ -n $versions ]]; then
		head -n1 <<<"$versions"
	fi
}

vendor_fetch() {
	local line name ver file sha need=() f
	for line in "${VENDOR_PINS[@]}"; do
		read -r -a f <<<"$line"
		name=${f[0]} file=${f[2]} sha=${f[3]}
		if [[ -f $DL/$file ]]; then
			sha_ok "$DL/$file" "$sha" || die "vendor/dl/$file does not match its pinned sha256 $sha
  (got $(sha256sum "$DL/$file" | cut -d' ' -f1)). Delete it and re-run './build.sh vendor'."
		else
			need+=("$name")
		fi
	done
	((${#need[@]})) || return 0

	command -v apt-get >/dev/null || die "apt-get is needed to fetch vendor sources"
	mkdir -p "$DL" "$LOGS"
	apt_private_setup
	apt_private_update

	# Download into a scratch dir the _apt sandbox user may write to.
	local tmp=$APTDIR/src-dl
	rm -rf "$tmp"; mkdir -p "$tmp"
	if [[ $(id -u) -eq 0 ]] && id _apt >/dev/null 2>&1; then
		chown _apt "$tmp"
	fi
	for name in "${need[@]}"; do
		file=$(pin_field "$name" 3) sha=$(pin_field "$name" 4)
		ver=$(apt_pick_version "$name" "$(pin_field "$name" 2)" "$file" "$sha")
		[[ -n $ver ]] || die "no Debian source package in [$APT_SUITES] ships $file with sha256 $sha"
		log "fetching $name=$ver ($file)"
		(cd "$tmp" && apt-get -q "${APT_OPTS[@]}" source --download-only --tar-only --only-source "$name=$ver") \
			>"$LOGS/apt-source-$name.log" 2>&1 || { cat "$LOGS/apt-source-$name.log" >&2; die "apt-get source $name=$ver failed"; }
		[[ -f $tmp/$file ]] || die "apt-get source $name=$ver did not produce $file"
		if ! sha_ok "$tmp/$file" "$sha"; then
			die "SHA256 MISMATCH for $file: expected $sha, got $(sha256sum "$tmp/$file" | cut -d' ' -f1). Refusing to use it."
		fi
		cp "$tmp/$file" "$DL/$file.part" && mv "$DL/$file.part" "$DL/$file"
		rm -f "$tmp/$file"
		log "verified $file sha256 $sha"
	done
	rm -rf "$tmp"
}

# Extract a pinned tarball into DIR (fresh), dropping the top-level directory.
vendor_extract() { # NAME DIR
	local file
	file=$(pin_field "$1" 3)
	rm -rf "$2"; mkdir -p "$2"
	tar -xf "$DL/$file" -C "$2" --strip-components=1
}

# The kernel uapi headers musl-gcc needs (linux/, asm/, asm-generic/), without the
# rest of glibc's /usr/include.
vendor_uapi() {
	local multiarch key
	multiarch=$($HOST_CC -print-multiarch 2>/dev/null || true)
	[[ -n $multiarch ]] || multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || true)
	[[ -d /usr/include/$multiarch/asm ]] || die "kernel headers not found at /usr/include/$multiarch/asm (install linux-libc-dev)"
	key="linux-libc-dev=$(dpkg-query -W -f='${Version}' linux-libc-dev 2>/dev/null || echo unknown) arch=$multiarch"
	if [[ -f $STAMPS/uapi && $(<"$STAMPS/uapi") == "$key" && -d $VENDOR/uapi/include/linux ]]; then
		return 0
	fi
	log "copying kernel uapi headers ($key)"
	rm -rf "$VENDOR/uapi"; mkdir -p "$VENDOR/uapi/include"
	cp -a /usr/include/linux /usr/include/asm-generic "$VENDOR/uapi/include/"
	cp -a "/usr/include/$multiarch/asm" "$VENDOR/uapi/include/asm"
	mkdir -p "$STAMPS"; echo "$key" >"$STAMPS/uapi"
}

# SQLite's compile-time options: a connection per thread (no mutexes of its own), no
# extension loading, WAL commits synced at checkpoints only, strict quoting.
SQLITE_DEFINES="-DSQLITE_THREADSAFE=2 -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_DEFAULT_WAL_SYNCHRONOUS=1 -DSQLITE_DQS=0 -DSQLITE_DEFAULT_MEMSTATUS=0 -DSQLITE_OMIT_DEPRECATED -DSQLITE_OMIT_SHARED_CACHE -DSQLITE_USE_ALLOCA -DSQLITE_LIKE_DOESNT_MATCH_BLOBS"

# The SQLite amalgamation (sqlite3.c + sqlite3.h) from the pinned source tree; the
# source package ships the tree, and its Makefile joins it with tclsh.
vendor_sqlite() {
	local key src=$VENDOR/src/sqlite-amalgamation
	key="$(pin_field sqlite3 3) $(pin_field sqlite3 4)"
	if [[ -f $STAMPS/sqlite && $(<"$STAMPS/sqlite") == "$key" && -f $VENDOR/sqlite/sqlite3.c ]]; then
		return 0
	fi
	command -v tclsh >/dev/null || die "tclsh is needed to make the SQLite amalgamation (apt-get install tcl)"
	log "making the SQLite amalgamation"
	vendor_extract sqlite3 "$src"
	logged "$LOGS/sqlite-configure.log" bash -c 'cd "$1" && ./configure --disable-tcl --disable-readline' _ "$src"
	logged "$LOGS/sqlite-amalgamation.log" make -C "$src" sqlite3.c
	rm -rf "$VENDOR/sqlite"; mkdir -p "$VENDOR/sqlite"
	cp "$src/sqlite3.c" "$src/sqlite3.h" "$VENDOR/sqlite/"
	rm -rf "$src"
	mkdir -p "$STAMPS"; echo "$key" >"$STAMPS/sqlite"
}

# Build liburing + BearSSL + SQLite (+ jsmn header) for one toolchain into vendor/$1.
vendor_build_one() { # KIND(musl|host) CC CFLAGS
	local kind=$1 cc=$2 cflags=$3
	local prefix=$VENDOR/$kind src=$VENDOR/src/$kind key
	key="pins=$(printf '%s;' "${VENDOR_PINS[@]}" | tr -s ' ') sqlite=$SQLITE_DEFINES cc=$cc ver=$($cc -dumpfullversion -dumpversion 2>/dev/null | head -n1) cflags=$cflags"
	if [[ $kind == musl ]]; then key+=" uapi=$(<"$STAMPS/uapi")"; fi
	if [[ -f $STAMPS/$kind && $(<"$STAMPS/$kind") == "$key" && -f $prefix/lib/liburing.a &&
		-f $prefix/lib/libbearssl.a && -f $prefix/lib/libsqlite3.a && -f $prefix/include/jsmn.h ]]; then
		return 0
	fi
	local t0=$SECONDS
	log "building vendor libraries for $kind ($cc)"
	rm -f "$STAMPS/$kind"
	rm -rf "$prefix"; mkdir -p "$prefix/include/liburing" "$prefix/lib"

	# liburing: its configure detects the libc/kernel headers; we want the static lib only.
	vendor_extract liburing "$src/liburing"
	logged "$LOGS/$kind-liburing-configure.log" \
		bash -c 'cd "$1" && ./configure --cc="$2" --prefix="$3"' _ "$src/liburing" "$cc" "$prefix"
	logged "$LOGS/$kind-liburing-make.log" \
		make -C "$src/liburing/src" -j"$JOBS" CC="$cc" CFLAGS="$cflags -Wall -Wextra" ENABLE_SHARED=0 liburing.a
	cp "$src/liburing/src/liburing.a" "$prefix/lib/"
	cp "$src/liburing/src/include/liburing.h" "$prefix/include/"
	cp "$src/liburing/src/include/liburing/"*.h "$prefix/include/liburing/"

	# BearSSL: only the static library (no tools, no tests). OBJDIR is made up
	# front: its Makefile does not order it before the objects under -j.
	vendor_extract bearssl "$src/bearssl"
	mkdir -p "$src/bearssl/build/obj"
	logged "$LOGS/$kind-bearssl-make.log" \
		make -C "$src/bearssl" -j"$JOBS" CC="$cc" CFLAGS="-W -Wall $cflags" lib
	cp "$src/bearssl/build/libbearssl.a" "$prefix/lib/"
	cp "$src/bearssl/inc/"bearssl*.h "$prefix/include/"

	# jsmn: header only.
	vendor_extract jsmn "$src/jsmn"
	cp "$src/jsmn/jsmn.h" "$prefix/include/"

	# SQLite: the amalgamation (made once by vendor_sqlite), one object, one archive.
	mkdir -p "$src/sqlite"
	logged "$LOGS/$kind-sqlite-make.log" $cc $cflags $SQLITE_DEFINES -c "$VENDOR/sqlite/sqlite3.c" -o "$src/sqlite/sqlite3.o"
	ar rcs "$prefix/lib/libsqlite3.a" "$src/sqlite/sqlite3.o"
	cp "$VENDOR/sqlite/sqlite3.h" "$prefix/include/"

	rm -rf "$src"
	rmdir "$VENDOR/src" 2>/dev/null || true
	mkdir -p "$STAMPS"; echo "$key" >"$STAMPS/$kind"
	log "vendor/$kind ready ($((SECONDS - t0))s)"
}

cmd_vendor() {
	deps_build
	mkdir -p "$VENDOR" "$LOGS"
	# One vendor build at a time (two shells running ./build.sh test, say).
	local lockfd
	exec {lockfd}>"$VENDOR/.lock"
	if ! flock -n "$lockfd"; then
		log "waiting for another build.sh to finish with vendor/"
		flock "$lockfd"
	fi
	vendor_fetch
	vendor_uapi
	vendor_sqlite
	vendor_build_one musl "$MUSL_CC -isystem $VENDOR/uapi/include" "$VENDOR_MUSL_CFLAGS"
	vendor_build_one host "$HOST_CC" "$VENDOR_HOST_CFLAGS"
	exec {lockfd}>&-
}

# ---------------------------------------------------------------------------
# ui: the web UI's third-party files (npm tarballs pinned by ui/package-lock.json's
# sha512 integrity) and the bundle embedded into the binary
# ---------------------------------------------------------------------------
NPM_REGISTRY=${NPM_REGISTRY:-https://registry.npmjs.org}
UI_BUNDLE=$VENDOR/ui/bundle

ui_pins() { # "name version sha512-..." per package in ui/package-lock.json
	awk '/"node_modules\//{n=$1; gsub(/[":{ ]|node_modules\//,"",n)}
	     /"version"/&&n{v=$2; gsub(/[",]/,"",v)}
	     /"integrity"/&&n{i=$2; gsub(/[",]/,"",i); print n, v, i; n=""}' ui/package-lock.json
}

ui_fetch() {
	local name ver integ file got
	mkdir -p "$DL" "$VENDOR/ui/node_modules"
	while read -r name ver integ; do
		file=$DL/npm-$name-$ver.tgz
		if [[ ! -f $file ]]; then
			log "fetching $name@$ver from $NPM_REGISTRY"
			curl -fsSL --retry 3 -o "$file.part" "$NPM_REGISTRY/$name/-/$name-$ver.tgz" || die "cannot fetch $name@$ver"
			mv "$file.part" "$file"
		fi
		got="sha512-$(openssl dgst -sha512 -binary "$file" | base64 -w0)"
		[[ $got == "$integ" ]] || die "INTEGRITY MISMATCH for $name@$ver: expected $integ, got $got. Refusing to use it."
		if [[ ! -f $VENDOR/ui/node_modules/$name/.integrity || $(<"$VENDOR/ui/node_modules/$name/.integrity") != "$integ" ]]; then
			rm -rf "$VENDOR/ui/node_modules/$name"; mkdir -p "$VENDOR/ui/node_modules/$name"
			tar -xzf "$file" -C "$VENDOR/ui/node_modules/$name" --strip-components=1
			echo "$integ" >"$VENDOR/ui/node_modules/$name/.integrity"
		fi
	done < <(ui_pins)
}

# The bundle: for each file "PATH\nLENGTH\n" then its bytes (admin_ui_file reads it).
ui_bundle() {
	local f src name served tmp=$UI_BUNDLE.tmp
	[[ -f ui/index.html ]] || { rm -f "$UI_BUNDLE"; return 0; }
	ui_fetch
	: >"$tmp"
	for f in ui/*.html ui/*.js ui/*.css ui/*.svg; do
		[[ -f $f ]] || continue
		printf '/ui/%s\n%s\n' "$(basename "$f")" "$(stat -c %s "$f")" >>"$tmp"
		cat "$f" >>"$tmp"
	done
	while read -r src served; do
		[[ -n $src ]] || continue
		f=$VENDOR/ui/node_modules/$src
		[[ -f $f ]] || die "ui/vendor.txt names $src, which the pinned packages do not have"
		printf '/ui/vendor/%s\n%s\n' "$served" "$(stat -c %s "$f")" >>"$tmp"
		cat "$f" >>"$tmp"
	done <ui/vendor.txt
	if [[ -f $UI_BUNDLE ]] && cmp -s "$tmp" "$UI_BUNDLE"; then rm -f "$tmp"; else mv "$tmp" "$UI_BUNDLE"; fi
}

# ---------------------------------------------------------------------------
# build dist/bifrost
# ---------------------------------------------------------------------------

bin_deps() {
	printf '%s\n' bifrost.c build.sh vendor/musl/lib/liburing.a vendor/musl/lib/libbearssl.a vendor/musl/lib/libsqlite3.a
	[[ ! -f $UI_BUNDLE ]] || echo "$UI_BUNDLE"
}

# Build dist/bifrost if it is out of date. Returns 0 (with a warning) when there
# is no bifrost.c yet, 1 when the compile fails. Every step is checked by hand:
# callers use it in `if`, where `set -e` does not apply.
build_bifrost() {
	if [[ ! -f bifrost.c ]]; then
		warn "bifrost.c not found in $ROOT -- nothing to build yet (toolchain and vendor/ are ready)"
		return 0
	fi
	local deps=() ui=()
	ui_bundle
	[[ ! -f $UI_BUNDLE ]] || ui=("-DBIFROST_UI_BUNDLE=\"$UI_BUNDLE\"")
	mapfile -t deps < <(bin_deps)
	if ! needs_rebuild dist/bifrost "${deps[@]}"; then
		return 0
	fi
	mkdir -p dist
	local version
	version=$(git describe --always --dirty 2>/dev/null || echo dev)
	log "compiling dist/bifrost ($version)"
	rm -f dist/bifrost.tmp
	# shellcheck disable=SC2086
	if ! $MUSL_CC $BIN_CFLAGS $BIN_CPPFLAGS "-DBIFROST_VERSION=\"$version\"" "${ui[@]}" \
		bifrost.c $BIN_LDFLAGS $BIN_LIBS -o dist/bifrost.tmp; then
		rm -f dist/bifrost.tmp
		warn "compiling bifrost.c failed"
		return 1
	fi
	strip dist/bifrost.tmp && mv dist/bifrost.tmp dist/bifrost || return 1
	log "built dist/bifrost ($(stat -c %s dist/bifrost) bytes)"
}

cmd_build() {
	cmd_vendor
	build_bifrost || die "build failed"
}

# ---------------------------------------------------------------------------
# test
# ---------------------------------------------------------------------------
UNIT_PASS=0 UNIT_FAIL=0 INT_PASS=0 INT_FAIL=0
FAILED=()

run_unit_tests() {
	shopt -s nullglob
	local files=(tests/unit/*.c) f name bin logf rc synth tested passing
	shopt -u nullglob
	if ((${#files[@]} == 0)); then
		log "unit: no tests/unit/*.c yet -- skipped"
		return 0
	fi
	mkdir -p tests/build
	local cflags ldflags
	cflags="$TEST_CFLAGS $TEST_CPPFLAGS $(pkg-config --cflags criterion)"
	ldflags="$TEST_LDFLAGS $TEST_LIBS $(pkg-config --libs criterion) -lpthread"
	local extra_deps=()
	shopt -s nullglob; extra_deps=(tests/unit/*.h tests/fuzz/*.h); shopt -u nullglob
	for f in "${files[@]}"; do
		name=$(basename "$f" .c)
		bin=tests/build/$name
		if needs_rebuild "$bin" "$f" bifrost.c build.sh "${extra_deps[@]}" \
			$HOST_LIB_DEPS; then
			log "unit: compiling $f"
			# shellcheck disable=SC2086
			if ! $HOST_CC $cflags "$f" $ldflags -o "$bin"; then
				rm -f "$bin"
				UNIT_FAIL=$((UNIT_FAIL + 1)); FAILED+=("unit/$name (compile)")
				continue
			fi
		fi
		log "unit: running $bin"
		logf=tests/build/$name.log
		set +e
		ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
		UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
			"$bin" 2>&1 | tee "$logf"
		rc=${PIPESTATUS[0]}
		set -e
		# Criterion: "[====] Synthesis: Tested: N | Passing: N | Failing: N | Crashing: N"
		synth=$(grep -a 'Synthesis: Tested:' "$logf" | tail -n1 | sed 's/\x1b\[[0-9;]*m//g' || true)
		if [[ -n $synth ]]; then
			tested=$(sed -E 's/.*Tested: *([0-9]+).*/\1/' <<<"$synth")
			passing=$(sed -E 's/.*Passing: *([0-9]+).*/\1/' <<<"$synth")
			UNIT_PASS=$((UNIT_PASS + passing))
			UNIT_FAIL=$((UNIT_FAIL + tested - passing))
			if ((rc != 0 && tested == passing)); then
				UNIT_FAIL=$((UNIT_FAIL + 1))   # crashed outside a test (e.g. a leak at exit)
			fi
		elif ((rc == 0)); then
			warn "unit: $bin printed no Criterion synthesis line"
		else
			UNIT_FAIL=$((UNIT_FAIL + 1))
		fi
		((rc == 0)) || FAILED+=("unit/$name (exit $rc)")
	done
}

# Newest mtime among package.json / package-lock.json is newer than node_modules?
npm_stale() {
	[[ -d tests/node_modules ]] || return 0
	[[ tests/package.json -nt tests/node_modules ]] && return 0
	[[ -f tests/package-lock.json && tests/package-lock.json -nt tests/node_modules ]] && return 0
	return 1
}

# tap_failures FILE...: "file:line  test name" and the first line of its error, for each
# failed test, so that the summary (the part of a CI log that is kept) names them.
tap_failures() {
	awk '
		/^ *not ok [0-9]+ - / { sub(/^ *not ok [0-9]+ - /, ""); name = $0; want = 1; next }
		want && /^ *location: / { loc = $0; sub(/^ *location: .*tests\//, "tests/", loc); sub(/:[0-9]+.$/, "", loc) }
		want && /^ *error: / { err = $0; sub(/^ *error: [|>-]*/, "", err); if (err == "") { getline err; sub(/^ */, "", err) } }
		want && /^ *\.\.\.$/ { printf "  %s  %s\n      %s\n", loc, substr(name, 1, 150), substr(err, 1, 200); want = 0; loc = err = "" }
	' "$@" 2>/dev/null
}

tap_count() { # FILE KEY -> number after "# KEY"
	local n
	n=$(grep -aE "^# $2 [0-9]+" "$1" 2>/dev/null | tail -n1 | awk '{print $3}')
	echo "${n:-0}"
}

run_integration_tests() {
	local files=()
	if [[ -d tests/integration ]]; then
		mapfile -t files < <(find tests/integration -type f -name '*.test.mjs' | LC_ALL=C sort)
	fi
	if ((${#files[@]} == 0)); then
		log "integration: no tests/integration/*.test.mjs yet -- skipped"
		return 0
	fi
	command -v node >/dev/null || die "node is not on PATH (run ./build.sh deps)"
	if [[ -f tests/package.json ]] && npm_stale; then
		command -v npm >/dev/null || die "npm is not on PATH"
		if [[ -f tests/package-lock.json ]]; then
			log "integration: npm ci"
			(cd tests && npm ci --no-audit --no-fund)
		else
			log "integration: npm install (no package-lock.json)"
			(cd tests && npm install --no-audit --no-fund)
		fi
		mkdir -p tests/node_modules && touch tests/node_modules
	fi
	if [[ ! -x dist/bifrost ]]; then
		warn "integration: dist/bifrost does not exist; the tests will fail"
	fi
	mkdir -p tests/build
	export BIFROST_BIN=$ROOT/dist/bifrost
	local rc=0 tap=tests/build/integration.tap f i=0
	rm -f tests/build/integration*.tap
	local reporters=(--test-reporter=spec --test-reporter-destination=stdout)
	if node --help 2>/dev/null | grep -q -- '--test-concurrency'; then
		log "integration: node --test (${#files[@]} files)"
		set +e
		node --test --test-concurrency=1 "${reporters[@]}" \
			--test-reporter=tap --test-reporter-destination="$tap" "${files[@]}"
		rc=$?
		set -e
		INT_PASS=$(tap_count "$tap" pass)
		INT_FAIL=$(($(tap_count "$tap" fail) + $(tap_count "$tap" cancelled)))
	else
		# Older node: no --test-concurrency, so run the files one at a time.
		for f in "${files[@]}"; do
			i=$((i + 1))
			set +e
			node --test "${reporters[@]}" --test-reporter=tap \
				--test-reporter-destination="tests/build/integration.$i.tap" "$f"
			rc=$((rc | $?))
			set -e
			INT_PASS=$((INT_PASS + $(tap_count "tests/build/integration.$i.tap" pass)))
			INT_FAIL=$((INT_FAIL + $(tap_count "tests/build/integration.$i.tap" fail) + $(tap_count "tests/build/integration.$i.tap" cancelled)))
		done
	fi
	if ((rc != 0)); then
		((INT_FAIL > 0)) || INT_FAIL=1
		FAILED+=("integration (node exit $rc)")
	fi
}

# ---------------------------------------------------------------------------
# fuzz: libFuzzer targets (tests/fuzz/<name>.c, bodies in tests/fuzz/targets.h),
# and the gateway under ASan/UBSan for a subset of the integration tests
# ---------------------------------------------------------------------------
FUZZ_CC=${FUZZ_CC:-clang}
FUZZ_CFLAGS=${FUZZ_CFLAGS:-"-std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -D_GNU_SOURCE -DBIFROST_TEST"}
FUZZ_TEST_SECONDS=${FUZZ_TEST_SECONDS:-8}   # per target, in ./build.sh test
FUZZ_ARGS=${FUZZ_ARGS:-}                    # extra libFuzzer flags (e.g. -seed=1 -max_len=16384)
FUZZ_OUT=tests/build/fuzz
# The gateway built with the host gcc + ASan/UBSan (glibc, not static), and the
# integration files run against it by ./build.sh test (missing ones are skipped).
ASAN_BIN_CFLAGS=${ASAN_BIN_CFLAGS:-"-std=gnu11 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -DBIFROST_DEBUG"}
ASAN_INTEGRATION_FILES=${ASAN_INTEGRATION_FILES:-"tests/integration/streaming.test.mjs tests/integration/failover.test.mjs tests/integration/tls.test.mjs tests/integration/hostile.test.mjs tests/integration/hardening.test.mjs tests/integration/circuit.test.mjs tests/integration/bedrock.test.mjs"}
FUZZ_PASS=0 FUZZ_FAIL=0 ASAN_PASS=0 ASAN_FAIL=0

# clang with libFuzzer: Debian splits the runtime (libclang_rt.fuzzer) into libclang-rt-N-dev.
deps_fuzz() {
	command -v "$FUZZ_CC" >/dev/null || apt_install clang
	local v rt
	v=$("$FUZZ_CC" -dumpversion 2>/dev/null | cut -d. -f1)
	rt=$("$FUZZ_CC" -print-resource-dir 2>/dev/null)/lib/linux/libclang_rt.fuzzer-$(uname -m).a
	if [[ ! -f $rt && -n $v ]]; then
		apt_install "libclang-rt-$v-dev"
	fi
}

fuzz_targets() {
	local f
	for f in tests/fuzz/*.c; do
		[[ -f $f ]] && basename "$f" .c
	done
}

# Build every target into tests/build/fuzz/. Prints the names that failed to compile.
fuzz_build() {
	mkdir -p "$FUZZ_OUT"
	local t bin hdrs=()
	shopt -s nullglob; hdrs=(tests/fuzz/*.h); shopt -u nullglob
	for t in $(fuzz_targets); do
		bin=$FUZZ_OUT/$t
		needs_rebuild "$bin" "tests/fuzz/$t.c" "${hdrs[@]}" bifrost.c build.sh \
			$HOST_LIB_DEPS || continue
		log "fuzz: compiling tests/fuzz/$t.c"
		# shellcheck disable=SC2086
		if ! $FUZZ_CC $FUZZ_CFLAGS $TEST_CPPFLAGS "tests/fuzz/$t.c" $TEST_LDFLAGS $TEST_LIBS -lpthread \
			-o "$bin.tmp.$$" >"$FUZZ_OUT/$t.build.log" 2>&1; then
			tail -n 30 "$FUZZ_OUT/$t.build.log" >&2
			rm -f "$bin" "$bin.tmp.$$"
			echo "$t"
			continue
		fi
		mv -f "$bin.tmp.$$" "$bin"
	done
}

# fuzz_run_one NAME SECONDS: run one target on a scratch copy of its corpus. Sets FZ_EXECS,
# FZ_COV (cov/ft of libFuzzer's last status line) and FZ_CRASHES (new artifacts, or 1 if it
# failed without leaving one). Artifacts: tests/build/fuzz/artifacts/NAME/.
fuzz_run_one() {
	local t=$1 secs=$2
	# per run (two build.sh may fuzz at once): the scratch corpus, the log until it is complete
	local work=$FUZZ_OUT/work.$$/$t art=$FUZZ_OUT/artifacts/$t logf=$FUZZ_OUT/$t.log.$$ rc n
	rm -rf "$work"
	mkdir -p "$work" "$art"
	if [[ -d tests/fuzz/corpus/$t ]]; then
		find "tests/fuzz/corpus/$t" -maxdepth 1 -type f -exec cp {} "$work/" \;
	fi
	local args=(-max_total_time="$secs" -timeout=1 -rss_limit_mb=2048 -print_final_stats=1
		-artifact_prefix="$art/")
	[[ ! -f tests/fuzz/$t.dict ]] || args+=(-dict="tests/fuzz/$t.dict")
	local start=$FUZZ_OUT/.start.$$
	touch "$start"
	set +e
	# shellcheck disable=SC2086
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
		"$FUZZ_OUT/$t" "${args[@]}" $FUZZ_ARGS "$work" >"$logf" 2>&1
	rc=$?
	set -e
	# (|| true: a target that crashes on its seeds prints no status line; pipefail would end us)
	FZ_EXECS=$({ grep -a 'stat::number_of_executed_units:' "$logf" || true; } | tail -n1 | awk '{print $2}')
	FZ_COV=$({ grep -aoE 'cov: [0-9]+ ft: [0-9]+' "$logf" || true; } | tail -n1 | awk '{print $2 "/" $4}')
	n=$(find "$art" -maxdepth 1 -type f -newer "$start" \
		\( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
	if ((n == 0 && rc != 0)); then n=1; fi
	rm -rf "$work" "$start"
	rmdir "$FUZZ_OUT/work.$$" 2>/dev/null || true
	mv -f "$logf" "$FUZZ_OUT/$t.log"
	logf=$FUZZ_OUT/$t.log
	FZ_CRASHES=$n
	FZ_EXECS=${FZ_EXECS:-0} FZ_COV=${FZ_COV:--}
	if ((n > 0)); then
		{
			printf 'fuzz: %s failed (exit %d); log %s, artifacts %s/\n' "$t" "$rc" "$logf" "$art"
			grep -aE -m 12 'ERROR:|runtime error|INVARIANT|SUMMARY|^ +#[0-9]+ 0x[0-9a-f]+ in ' "$logf" || true
		} >&2
	fi
}

# fuzz_all SECONDS: every target, one at a time; the table; FUZZ_PASS/FUZZ_FAIL.
fuzz_all() {
	local secs=$1 t failed
	failed=$(fuzz_build)
	local rows=()
	for t in $(fuzz_targets); do
		if grep -qxF "$t" <<<"$failed"; then
			rows+=("$(printf '%-18s %12s %14s %8s' "$t" - - 'build!')")
			FUZZ_FAIL=$((FUZZ_FAIL + 1)); FAILED+=("fuzz/$t (compile, see $FUZZ_OUT/$t.build.log)")
			continue
		fi
		log "fuzz: $t for ${secs}s"
		fuzz_run_one "$t" "$secs"
		rows+=("$(printf '%-18s %12s %14s %8s' "$t" "$FZ_EXECS" "$FZ_COV" "$FZ_CRASHES")")
		if ((FZ_CRASHES > 0)); then
			FUZZ_FAIL=$((FUZZ_FAIL + 1)); FAILED+=("fuzz/$t ($FZ_CRASHES crash(es): $FUZZ_OUT/artifacts/$t/)")
		else
			FUZZ_PASS=$((FUZZ_PASS + 1))
		fi
	done
	echo
	printf '%-18s %12s %14s %8s\n' target execs cov/ft crashes
	printf '%s\n' "${rows[@]}"
}

cmd_fuzz_build() {
	deps_build
	deps_fuzz
	cmd_vendor
	local failed
	failed=$(fuzz_build)
	[[ -z $failed ]] || die "fuzz targets that did not compile: $(echo $failed)"
	log "fuzz targets in $FUZZ_OUT/: $(echo $(fuzz_targets))"
}

cmd_fuzz() {
	local secs=${1:-60}
	[[ $secs =~ ^[0-9]+$ && $secs -gt 0 ]] || die "fuzz: SECONDS must be a positive number"
	deps_build
	deps_fuzz
	cmd_vendor
	FAILED=()
	fuzz_all "$secs"
	local f
	for f in ${FAILED[@]+"${FAILED[@]}"}; do echo "FAILED: $f"; done
	((FUZZ_FAIL == 0))
}

# dist/bifrost-asan: the release's defines, host gcc + glibc + ASan/UBSan, vendor/host libs.
build_bifrost_asan() {
	[[ -f bifrost.c ]] || return 1
	# shellcheck disable=SC2086
	needs_rebuild dist/bifrost-asan bifrost.c build.sh $HOST_LIB_DEPS || return 0
	mkdir -p dist
	local version
	version=$(git describe --always --dirty 2>/dev/null || echo dev)
	log "compiling dist/bifrost-asan ($version)"
	# shellcheck disable=SC2086
	if ! $HOST_CC $ASAN_BIN_CFLAGS $TEST_CPPFLAGS "-DBIFROST_VERSION=\"$version-asan\"" bifrost.c \
		$TEST_LDFLAGS $TEST_LIBS -lpthread -o "dist/bifrost-asan.tmp.$$"; then
		rm -f "dist/bifrost-asan.tmp.$$"
		return 1
	fi
	mv -f "dist/bifrost-asan.tmp.$$" dist/bifrost-asan
}

# The integration files in ASAN_INTEGRATION_FILES against dist/bifrost-asan: any sanitizer
# report aborts the gateway, and the test that was using it fails.
run_asan_integration() {
	local f files=()
	for f in $ASAN_INTEGRATION_FILES; do
		if [[ -f $f ]]; then files+=("$f"); else log "integration under ASan: $f does not exist -- skipped"; fi
	done
	((${#files[@]})) || return 0
	if ! build_bifrost_asan; then
		ASAN_FAIL=$((ASAN_FAIL + 1)); FAILED+=("build dist/bifrost-asan")
		return 0
	fi
	command -v node >/dev/null || die "node is not on PATH (run ./build.sh deps)"
	mkdir -p tests/build
	local tap=tests/build/asan-integration.tap rc
	rm -f "$tap"
	log "integration under ASan: node --test (${#files[@]} files) against dist/bifrost-asan"
	set +e
	BIFROST_BIN=$ROOT/dist/bifrost-asan \
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=0 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
			--test-reporter=tap --test-reporter-destination="$tap" "${files[@]}"
	rc=$?
	set -e
	ASAN_PASS=$(tap_count "$tap" pass)
	ASAN_FAIL=$(($(tap_count "$tap" fail) + $(tap_count "$tap" cancelled)))
	if ((rc != 0)); then
		((ASAN_FAIL > 0)) || ASAN_FAIL=1
		FAILED+=("integration under ASan (node exit $rc)")
	fi
}

# ./build.sh test: every fuzz target for FUZZ_TEST_SECONDS (a crash is a failure).
run_fuzz_smoke() {
	if ! command -v "$FUZZ_CC" >/dev/null; then
		FUZZ_FAIL=$((FUZZ_FAIL + 1)); FAILED+=("fuzz ($FUZZ_CC not found: ./build.sh deps)")
		return 0
	fi
	[[ -n $(fuzz_targets) ]] || return 0
	fuzz_all "$FUZZ_TEST_SECONDS"
}

# The structure rules of bifrost.c (tests/lint.py): table of contents, prefixes in their
# sections, calls only downward, function length, no I/O in the leaf sections.
run_lint() {
	if python3 tests/lint.py bifrost.c; then
		LINT_OK=1
	else
		FAILED+=("lint (tests/lint.py: structure of bifrost.c, findings above)")
	fi
}

cmd_lint() {
	command -v python3 >/dev/null || apt_install python3
	python3 tests/lint.py bifrost.c && log "lint: bifrost.c is clean"
}

cmd_test() {
	local what=${1:-all}
	case $what in all | unit | integration | fuzz | asan) ;; *) die "test: unknown part '$what' (all|unit|integration|fuzz|asan)" ;; esac
	deps_build
	deps_test
	[[ $what == integration || $what == asan ]] || deps_fuzz
	cmd_vendor
	if ! build_bifrost; then
		FAILED+=("build dist/bifrost")
	fi
	LINT_OK=0
	if [[ $what == all || $what == unit ]]; then run_lint; run_unit_tests; fi
	if [[ $what == all || $what == unit || $what == fuzz ]]; then run_fuzz_smoke; fi
	if [[ $what == all || $what == integration ]]; then run_integration_tests; fi
	if [[ $what == all || $what == integration || $what == asan ]]; then run_asan_integration; fi

	echo
	echo "==================== test summary ===================="
	printf 'lint (tests/lint.py):     %s\n' "$( ((LINT_OK)) && echo clean || echo 'not run or findings')"
	printf 'unit tests (Criterion):   %d passed, %d failed\n' "$UNIT_PASS" "$UNIT_FAIL"
	printf 'integration tests (node): %d passed, %d failed\n' "$INT_PASS" "$INT_FAIL"
	printf 'fuzz targets (libFuzzer): %d clean, %d crashed (%ss each)\n' "$FUZZ_PASS" "$FUZZ_FAIL" "$FUZZ_TEST_SECONDS"
	printf 'integration under ASan:   %d passed, %d failed\n' "$ASAN_PASS" "$ASAN_FAIL"
	local f
	for f in ${FAILED[@]+"${FAILED[@]}"}; do echo "FAILED: $f"; done
	if ((INT_FAIL + ASAN_FAIL > 0)); then
		echo "failed tests:"
		tap_failures tests/build/integration*.tap tests/build/asan-integration.tap
	fi
	echo "======================================================"
	echo "total: $((UNIT_PASS + INT_PASS + FUZZ_PASS + ASAN_PASS)) passed, $((UNIT_FAIL + INT_FAIL + FUZZ_FAIL + ASAN_FAIL)) failed"
	((UNIT_FAIL + INT_FAIL + FUZZ_FAIL + ASAN_FAIL == 0 && ${#FAILED[@]} == 0))
}

# ---------------------------------------------------------------------------
# other commands
# ---------------------------------------------------------------------------
cmd_run() {
	[[ -f bifrost.c ]] || die "cannot run: bifrost.c does not exist yet"
	cmd_vendor
	build_bifrost || die "build failed"
	exec dist/bifrost "$@"
}

cmd_bench() {
	deps_build
	deps_bench
	[[ -f bifrost.c ]] || die "cannot bench: bifrost.c does not exist yet"
	cmd_vendor
	build_bifrost || die "build failed"
	export BIFROST_BIN=$ROOT/dist/bifrost
	[[ -f bench/run.sh ]] || die "bench/run.sh does not exist yet"
	exec bash bench/run.sh "$@"
}

cmd_clean() {
	rm -rf dist/bifrost dist/bifrost.tmp dist/bifrost-asan tests/build
	log "removed dist/bifrost, dist/bifrost-asan and tests/build (vendor/ kept; rm -rf vendor for a cold rebuild)"
}

cmd_help() {
	cat <<EOF
usage: ./build.sh [command] [args]

  (none)        deps (build) + vendor + dist/bifrost
  deps          install every missing Debian package (build, test and bench)
  vendor        fetch pinned Debian source tarballs into vendor/dl (sha256-checked),
                build liburing + BearSSL (+ jsmn header) into vendor/musl and vendor/host
  build         same as no command
  run [ARGS]    build if needed, then exec dist/bifrost ARGS
  test [PART]   build, then unit tests (tests/unit/*.c, Criterion + ASan/UBSan),
                every fuzz target for FUZZ_TEST_SECONDS (default 8), integration tests
                (tests/integration/*.test.mjs, node --test), and ASAN_INTEGRATION_FILES
                against dist/bifrost-asan (gcc + ASan/UBSan);
                PART = all (default) | unit (+ fuzz) | integration (+ asan) | fuzz | asan
  fuzz [SECS]   build the libFuzzer targets (tests/fuzz/*.c) and run each for SECS
                (default 60) on a scratch copy of tests/fuzz/corpus/<target>; prints
                target, execs, cov/ft, crashes; artifacts in tests/build/fuzz/artifacts/
  fuzz-build    build the fuzz targets into tests/build/fuzz/ only (to run elsewhere)
  lint          tests/lint.py: the structure rules of bifrost.c (also run by test)
  bench [ARGS]  install bench tools (nginx, wrk, h2load), build, exec bench/run.sh ARGS
  clean         remove dist/bifrost and tests/build (keeps vendor/)
  help          this text

Knobs (environment): MUSL_CC HOST_CC JOBS BIN_CFLAGS BIN_CPPFLAGS BIN_LDFLAGS BIN_LIBS
  TEST_CFLAGS TEST_CPPFLAGS TEST_LDFLAGS TEST_LIBS VENDOR_MUSL_CFLAGS VENDOR_HOST_CFLAGS
  APT_MIRROR APT_SUITES APT_KEYRING FUZZ_CC FUZZ_CFLAGS FUZZ_ARGS FUZZ_TEST_SECONDS
  ASAN_BIN_CFLAGS ASAN_INTEGRATION_FILES
EOF
}

main() {
	local cmd=${1:-build}
	(($# == 0)) || shift
	case $cmd in
	build) cmd_build ;;
	deps) deps_build; deps_test; deps_fuzz; deps_bench ;;
	vendor) cmd_vendor ;;
	run) cmd_run "$@" ;;
	test) cmd_test "$@" ;;
	fuzz) cmd_fuzz "$@" ;;
	fuzz-build) cmd_fuzz_build ;;
	lint) cmd_lint ;;
	bench) cmd_bench "$@" ;;
	clean) cmd_clean ;;
	help | -h | --help) cmd_help ;;
	*) cmd_help >&2; die "unknown command '$cmd'" ;;
	esac
}

main "$@"
