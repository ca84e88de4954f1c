"""Upload of a converted folder to the Hugging Face Hub."""


class HubPushError(RuntimeError):
    """The upload to the Hub failed (no network, no token, no permission, ...)."""


def push_to_hub(folder, repo_id: str, private: bool = False, revision: str | None = None, token=None) -> str:
    """Uploads `folder` to the Hub model repo `repo_id` (created if missing); returns the commit URL.

    `private` applies when the repo is created; `revision` names a branch, created from main if
    missing. Any failure (no network, offline mode, no token, no permission) becomes a HubPushError
    with a one-line message.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            revision=revision,
            commit_message="Upload EdgeTAM converted by edgetam-hf",
        )
    # huggingface_hub reports network trouble under many types (httpx's, OSError, its own), and
    # the caller needs one line, not a trace.
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise HubPushError(f"could not push to the Hub repo {repo_id} ({type(error).__name__}: {reason})") from error
    return getattr(commit, "commit_url", None) or f"https://huggingface.co/{repo_id}"
