//! Embeds the built web console (`web/`, a Vite app) in the library: `$OUT_DIR/assets.rs` is a sorted table of its
//! files, each included with `include_bytes!` beside a gzip copy when that is smaller.
//!
//! Where the files come from, in order: the directory `CKP_CONSOLE_DIST` names (embedded as is, no npm); nothing
//! when `CKP_CONSOLE_SKIP=1`, `web/package.json` is missing or `npm` is not on PATH (a warning says how to get the
//! console); else `npm ci` in `web/` when its lock changed since the last install (the scheme `scripts/test` uses
//! for `tests/mcp`) and `npm run build` into `$OUT_DIR/console`. A failing npm fails the build with its output.

#[path = "src/kinds.rs"]
mod kinds;
#[path = "src/pack.rs"]
mod pack;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of `web/` whose change makes a new build of the console (directories are watched recursively), beside
/// its `tsconfig*.json`. `../examples` holds the CKP documents the builder's templates import.
const WATCHED: &[&str] =
    &["src", "public", "index.html", "package.json", "package-lock.json", "vite.config.ts", "../examples"];

fn main() {
    if let Err(message) = run() {
        eprintln!("\n{message}\n");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CKP_CONSOLE_DIST");
    println!("cargo:rerun-if-env-changed=CKP_CONSOLE_SKIP");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo did not set OUT_DIR")?);
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").ok_or("cargo did not set CARGO_MANIFEST_DIR")?);
    let workspace = manifest.ancestors().nth(2).ok_or("ckp-console is not at crates/ckp-console")?;
    let files = match source(workspace, &out)? {
        Some(dist) => collect(&dist)?,
        None => Vec::new(),
    };
    if !files.is_empty() && !files.iter().any(|(path, _)| path == "index.html") {
        println!("cargo:warning=the web console has no index.html: ckp serves the page saying it is not built");
    }
    write_table(&out, &files)
}

/// The directory of the built console to embed, or `None` (with a warning) when this build goes without it.
fn source(workspace: &Path, out: &Path) -> Result<Option<PathBuf>, String> {
    if let Some(dist) = std::env::var_os("CKP_CONSOLE_DIST").filter(|d| !d.is_empty()) {
        // A relative path is taken from the workspace root, where `cargo build` is usually run.
        let dist = workspace.join(dist);
        if !dist.is_dir() {
            return Err(format!("CKP_CONSOLE_DIST={} is not a directory", dist.display()));
        }
        println!("cargo:rerun-if-changed={}", dist.display());
        return Ok(Some(dist));
    }
    let web = workspace.join("web");
    // And every `tsconfig*.json` (Vite's template splits it in three).
    let tsconfigs = std::fs::read_dir(&web)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_str().is_some_and(|n| n.starts_with("tsconfig") && n.ends_with(".json")));
    for path in WATCHED.iter().map(|n| web.join(n)).chain(tsconfigs.map(|n| web.join(n))) {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let how = "to include it, install Node.js 20+ and npm, then rebuild (cargo build --release -p ckp)";
    if std::env::var_os("CKP_CONSOLE_SKIP").is_some_and(|v| v == "1") {
        println!("cargo:warning=ckp is built without the web console (CKP_CONSOLE_SKIP=1); unset it to include it");
        return Ok(None);
    }
    if !web.join("package.json").is_file() {
        println!(
            "cargo:warning=ckp is built without the web console ({} is missing)",
            web.join("package.json").display()
        );
        return Ok(None);
    }
    let Some(npm) = find_npm() else {
        // Installing Node.js changes PATH more often than anything else here: look again then.
        println!("cargo:rerun-if-env-changed=PATH");
        println!("cargo:warning=ckp is built without the web console (npm is not on PATH); {how}");
        return Ok(None);
    };
    let lock = web.join("package-lock.json");
    let installed = web.join("node_modules").join(".ckp-installed-lock");
    if std::fs::read(&lock).ok().is_none_or(|l| std::fs::read(&installed).ok().as_ref() != Some(&l)) {
        npm_run(&npm, &web, &["ci", "--no-audit", "--no-fund", "--loglevel=error"])?;
        // npm makes no node_modules for a package without dependencies.
        let modules = web.join("node_modules");
        std::fs::create_dir_all(&modules).map_err(|e| format!("cannot create {}: {e}", modules.display()))?;
        std::fs::copy(&lock, &installed)
            .map_err(|e| format!("cannot copy {} to {}: {e}", lock.display(), installed.display()))?;
    }
    let dist = out.join("console");
    let dist_arg = dist.to_str().ok_or_else(|| format!("OUT_DIR is not UTF-8: {}", out.display()))?;
    npm_run(&npm, &web, &["run", "build", "--", "--outDir", dist_arg, "--emptyOutDir"])?;
    Ok(Some(dist))
}

/// `npm` (or `npm.cmd` on Windows) on PATH.
fn find_npm() -> Option<PathBuf> {
    let names: &[&str] = if cfg!(windows) { &["npm.cmd", "npm.exe", "npm"] } else { &["npm"] };
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).flat_map(|dir| names.iter().map(move |n| dir.join(n))).find(|p| p.is_file())
}

/// Runs npm in `web/`; its output becomes the build's error when it fails.
fn npm_run(npm: &Path, web: &Path, args: &[&str]) -> Result<(), String> {
    let shown = format!("npm {}", args.join(" "));
    let output = Command::new(npm)
        .args(args)
        .current_dir(web)
        .output()
        .map_err(|e| format!("cannot run {shown} in {}: {e}\n{}", web.display(), skip_hint()))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "building the web console failed: `{shown}` in {} exited with {}\n--- npm's output ---\n{}{}\n--- end ---\n{}",
        web.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        skip_hint()
    ))
}

fn skip_hint() -> &'static str {
    "Fix the console build, or set CKP_CONSOLE_SKIP=1 to build ckp without the web console \
     (or CKP_CONSOLE_DIST=<dir> to embed a console built elsewhere)."
}

/// Every file under `dist`, as (path relative to it with `/` separators, absolute path), sorted by the former.
fn collect(dist: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let root = std::path::absolute(dist).map_err(|e| format!("{}: {e}", dist.display()))?;
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let relative = path.strip_prefix(&root).map_err(|e| format!("{}: {e}", path.display()))?;
            let parts: Option<Vec<&str>> = relative.components().map(|c| c.as_os_str().to_str()).collect();
            let parts = parts.ok_or_else(|| format!("a file name of the console is not UTF-8: {}", path.display()))?;
            files.push((parts.join("/"), path));
        }
    }
    files.sort();
    Ok(files)
}

/// Writes `$OUT_DIR/assets.rs` (and the gzip copies under `$OUT_DIR/gzip/`).
fn write_table(out: &Path, files: &[(String, PathBuf)]) -> Result<(), String> {
    let gzip_dir = out.join("gzip");
    let _ = std::fs::remove_dir_all(&gzip_dir);
    std::fs::create_dir_all(&gzip_dir).map_err(|e| format!("cannot create {}: {e}", gzip_dir.display()))?;
    let mut table = String::from("/// Every file of the console, sorted by path.\npub static ASSETS: &[Asset] = &[\n");
    for (i, (path, file)) in files.iter().enumerate() {
        let body = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let content_type = kinds::content_type(path);
        let gzip = match kinds::compressible(content_type).then(|| pack::gzip(&body)).flatten() {
            Some(packed) => {
                let copy = gzip_dir.join(format!("{i}.gz"));
                std::fs::write(&copy, packed).map_err(|e| format!("cannot write {}: {e}", copy.display()))?;
                format!("Some(include_bytes!({:?}))", text(&copy)?)
            }
            None => "None".to_owned(),
        };
        let _ = writeln!(
            table,
            "    Asset {{ path: {path:?}, content_type: {content_type:?}, body: include_bytes!({:?}), gzip: {gzip}, \
             etag: {:?}, immutable: {} }},",
            text(file)?,
            kinds::etag(&body),
            kinds::immutable(path),
        );
    }
    table.push_str("];\n");
    let target = out.join("assets.rs");
    std::fs::write(&target, table).map_err(|e| format!("cannot write {}: {e}", target.display()))
}

fn text(path: &Path) -> Result<&str, String> {
    path.to_str().ok_or_else(|| format!("not a UTF-8 path: {}", path.display()))
}
