#!/usr/bin/env bash
# Build the Linux bundle from a fresh clone:
#   dist/NoiseNil.AppDir/                      (noisenil-gui, noisenil, AppRun, .desktop entry, icon)
#   dist/noisenil-VERSION-linux-ARCH.tar.gz    (that folder, archived)
# Prints the build time and the size. Installs what it needs (apt when root, .venv via scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
NOISENIL_EXTRAS=gui bash scripts/setup.sh
.venv/bin/python -m pip install -q "pyinstaller==6.22.3"
version=$(.venv/bin/python -c 'import plugin_host; print(plugin_host.__version__)')
arch=$(uname -m)
start=$(date +%s)
rm -rf dist/NoiseNil dist/NoiseNil.AppDir
.venv/bin/pyinstaller --noconfirm --clean --log-level ERROR --distpath dist --workpath build/pyinstaller installers/noisenil.spec
app=dist/NoiseNil.AppDir
mv dist/NoiseNil "$app"
cp installers/noisenil.desktop "$app/noisenil.desktop"
cp installers/noisenil.svg "$app/noisenil.svg"
cat > "$app/AppRun" <<'RUN'
#!/bin/sh
# AppImage-style entry: `AppRun [FILES]` opens the app; `AppRun cli ARGS` runs the command line.
here="$(dirname "$(readlink -f "$0")")"
if [ "${1:-}" = "cli" ]; then shift; exec "$here/noisenil" "$@"; fi
exec "$here/noisenil-gui" "$@"
RUN
chmod +x "$app/AppRun"
archive="dist/noisenil-$version-linux-$arch.tar.gz"
tar -czf "$archive" -C dist NoiseNil.AppDir
end=$(date +%s)
echo "built $app in $((end - start)) s: $(du -sh "$app" | cut -f1) unpacked, archive $archive $(du -h "$archive" | cut -f1)"
