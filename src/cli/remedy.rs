//! The words for a library error's [`vault::error::Remedy`]: the library says what is
//! wrong and which step helps; the commands and flags that take that step are named here.

use vault::error::Remedy;
use vault::secrets::SecretsError;

/// The text a remedy adds to its error's message.
pub fn words(r: &Remedy) -> String {
    let text = match r {
        Remedy::InitStore { location } => {
            return format!(
                "create one with `vault init --store {location}`, or point --store (or `store` in the config) at an existing store"
            )
        }
        Remedy::ForceUnlockOrWait { host, lease } => {
            return format!(
                "if {host} is down, `vault unlock --force {lease}` removes the lease (else it expires by itself); {}",
                words(&Remedy::TryAgainOrWait)
            )
        }
        Remedy::TryAgainOrWait => "try again when it has finished (or wait with --lock-wait)",
        Remedy::RepairIndexThenPrune => {
            "run `vault repair index` to rebuild the index from the packs, then prune again"
        }
        Remedy::RepairIndexThenCheck => {
            "run `vault repair index` (rebuilds the index from the packs), then `vault check`"
        }
        Remedy::RepairIndexThenCheckOrRepairSnapshots => {
            "run `vault repair index` (rebuilds the index from the packs), then `vault check`; \
             if data is really lost, `vault repair snapshots` writes snapshots without the lost files"
        }
        Remedy::Check => "run `vault check`",
        Remedy::PruneAgain => "run `vault prune` again",
        Remedy::ListLeases => "`vault unlock` without --force lists the live ones",
        Remedy::WritableCacheDir => "set --cache-dir to a writable folder",
        Remedy::ReaderIdentityFile => "give the reader identity file with --identity",
        Remedy::StrongerPassphrase => {
            "Choose a longer one, such as five random words, or pass --allow-weak-passphrase to use it anyway"
        }
        Remedy::ChooseSnapshot => "choose one with `latest:HOST`, --host HOST or a snapshot id",
        Remedy::OneHostChoice => "give `latest:HOST` or --host HOST, not both",
        Remedy::ChooseOverwrite => {
            "choose what to do with them: --overwrite never (keep them), always (replace them), \
             if-changed, or if-newer; or restore into an empty folder"
        }
        Remedy::IncludeSnapshotPaths => "give --include paths at or below those",
        Remedy::EscrowPassphrase => "(or `--passphrase`)",
        Remedy::ChooseSecretHost => "choose one with --host",
        Remedy::EscrowKey => {
            return format!(
                "give --escrow-identity FILE, or the escrow passphrase with --escrow-passphrase-file FILE or {}",
                crate::cli::secrets::PASSPHRASE_ENV
            )
        }
        Remedy::OtherCopyDestination => "copy to another location",
        Remedy::LockEnabledBucket => {
            "use a bucket created with it (aws s3api create-bucket --object-lock-enabled-for-bucket), \
             enable it on a versioned bucket (aws s3api put-object-lock-configuration), or create \
             the store without --object-lock"
        }
        Remedy::StoreWithoutObjectLock => {
            "create the store without --object-lock, or use a server that has it"
        }
        Remedy::HostWriterKey => {
            "On the admin host run `vault host add NAME --out FILE` and install FILE here as the writer key"
        }
        Remedy::ReaderOrHostWriterKey => {
            "give the store's reader identity or passphrase, or use a writer key file made by `vault host add`"
        }
    };
    text.to_string()
}

/// What goes between an error's message and its remedy's words: most remedies are a
/// clause of their own, some a sentence, a line, or a parenthesis.
fn separator(r: &Remedy) -> &'static str {
    match r {
        Remedy::HostWriterKey => ". ",
        Remedy::LockEnabledBucket | Remedy::ReaderOrHostWriterKey => ": ",
        Remedy::ChooseSnapshot | Remedy::ChooseOverwrite => "\n",
        // A weak passphrase's message ends with its reasons, each a whole sentence; the
        // escrow passphrase's words are a parenthesis.
        Remedy::StrongerPassphrase | Remedy::EscrowPassphrase => " ",
        _ => "; ",
    }
}

/// The separator and the words of `remedy`, to append to its error's message.
pub fn appended(remedy: Option<Remedy>) -> String {
    remedy
        .map(|r| format!("{}{}", separator(&r), words(&r)))
        .unwrap_or_default()
}

/// The remedy of the first library error in `e`'s chain that has one, appended as by
/// [`appended`], or nothing.
pub fn suffix(e: &anyhow::Error) -> String {
    appended(e.chain().find_map(|c| {
        if let Some(v) = c.downcast_ref::<vault::Error>() {
            v.remedy()
        } else {
            c.downcast_ref::<SecretsError>()
                .and_then(SecretsError::remedy)
        }
    }))
}
