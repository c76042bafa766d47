//! `larder man`: roff man pages from the same definitions as `--help` (clap_mangen), one
//! per command and subcommand (`larder.1`, `larder-sync.1`, `larder-vault-sync.1`, …).

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory;

use crate::cli::Args;
use crate::exit;

pub fn run(dir: Option<&Path>) -> anyhow::Result<i32> {
    let cmd = Args::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        return Ok(exit::OK);
    };
    let man1 = dir.join("man1");
    std::fs::create_dir_all(&man1).with_context(|| format!("creating {}", man1.display()))?;
    let mut written = 0;
    write_pages(cmd, ("larder", "larder"), &man1, &mut written)?;
    eprintln!(
        "larder: wrote {written} man pages into {} (`man larder`, with {} on MANPATH)",
        man1.display(),
        dir.display()
    );
    Ok(exit::OK)
}

/// Writes `name.1` for `cmd` (run as `bin`), then one page per subcommand, named
/// `name-sub.1`.
fn write_pages(
    cmd: clap::Command,
    (name, bin): (&str, &str),
    man1: &Path,
    written: &mut usize,
) -> anyhow::Result<()> {
    // The page's name is `larder-sync`, as git's are (`git-commit`); its synopsis says
    // `larder sync`. (The few names live as long as the process, which prints and exits.)
    let page_name: &'static str = Box::leak(name.to_owned().into_boxed_str());
    let cmd = cmd.name(page_name).bin_name(bin.to_owned());
    let path = man1.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_owned())
        .render(&mut page)?;
    // Written whole, then renamed: a reader never sees half a page.
    let tmp = man1.join(format!(".{name}.1.tmp"));
    std::fs::write(&tmp, page).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    *written += 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let sub_name = format!("{name}-{}", sub.get_name());
        let sub_bin = format!("{bin} {}", sub.get_name());
        write_pages(sub.clone(), (&sub_name, &sub_bin), man1, written)?;
    }
    Ok(())
}
