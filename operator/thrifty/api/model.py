"""`spec.model`: which weights to serve, under which name, with which credentials."""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from thrifty.api.base import CelRule, SpecModel, cel_rules

# hf://[org/]name, pvc://claim[/path], s3://bucket[/key]. Hugging Face repo ids may omit the org
# (legacy ids such as "gpt2"); claims follow DNS-1123 labels; buckets follow S3's naming rules.
SOURCE_PATTERN = (
    r"^(hf://([A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*"
    r"|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[^\s]*)?"
    r"|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?)$"
)
SERVED_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
REVISION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"

Source = Annotated[str, StringConstraints(pattern=SOURCE_PATTERN, max_length=1024)]
Revision = Annotated[str, StringConstraints(pattern=REVISION_PATTERN, max_length=128)]
Scheme = Literal["hf", "pvc", "s3"]


class SourceParts(NamedTuple):
    """A model source split for the renderer: `hf://org/name` is ("hf", "org/name", ""),
    `pvc://claim/dir/x` is ("pvc", "claim", "dir/x"), `s3://bucket/key` is ("s3", "bucket", "key")."""

    scheme: Scheme
    name: str
    path: str


def split_source(source: str) -> SourceParts:
    scheme, _, rest = source.partition("://")
    if scheme == "hf":
        return SourceParts("hf", rest, "")
    if scheme in ("pvc", "s3"):
        name, _, path = rest.partition("/")
        return SourceParts("pvc" if scheme == "pvc" else "s3", name, path)
    raise ValueError(
        f"{source!r} is not a model source: use hf://org/name, pvc://claim/path or s3://bucket/key"
    )


NO_CREDENTIALS_FOR_PVC = CelRule(
    rule="!has(self.credentialsSecret) || !self.source.startsWith('pvc://')",
    message=(
        "spec.model.credentialsSecret is only used for hf:// and s3:// sources; "
        "a pvc:// source is read from the volume: remove credentialsSecret"
    ),
    field_path=".credentialsSecret",
)
REVISION_NEEDS_HF = CelRule(
    rule="!has(self.revision) || self.source.startsWith('hf://')",
    message=(
        "spec.model.revision pins a Hugging Face revision and needs an hf:// source: "
        "remove revision, or put the version into the pvc:// or s3:// path"
    ),
    field_path=".revision",
)


class ModelSpec(SpecModel):
    """The model to serve: where its weights come from and the name clients ask for."""

    model_config = ConfigDict(json_schema_extra=cel_rules(NO_CREDENTIALS_FOR_PVC, REVISION_NEEDS_HF))

    source: Source
    """Where the weights are, as a URI with one of three schemes:

    - `hf://ORG/NAME`: a Hugging Face Hub repository, downloaded into the pod's model cache at
      start (vLLM `--model ORG/NAME`). Gated models (e.g. Llama) need `credentialsSecret`.
    - `pvc://CLAIM/PATH`: a directory on a PersistentVolumeClaim in the same namespace, mounted
      read-only; vLLM gets the mounted path as `--model`.
    - `s3://BUCKET/KEY`: an S3 prefix, streamed by vLLM's Run:ai model streamer
      (`--load-format runai_streamer`).

    Example: `hf://meta-llama/Llama-3.1-8B-Instruct`."""

    served_name: Annotated[str, StringConstraints(pattern=SERVED_NAME_PATTERN, max_length=63)] | None = None
    """The model name clients send in the OpenAI `model` field (vLLM `--served-model-name`).
    Lowercase letters, digits, `-` and `.`, at most 63 characters. Defaults to the
    InferenceModel's own name. Example: `llama-3.1-8b`."""

    credentials_secret: (
        Annotated[str, StringConstraints(pattern=SECRET_NAME_PATTERN, max_length=253)] | None
    ) = None
    """Name of a Secret in the same namespace that grants access to the source. For hf:// its key
    `token` holds a Hugging Face access token; for s3:// its key `credentials` holds an AWS shared
    credentials file. The Secret is mounted into the pod as a read-only file and vLLM is pointed at
    the file's path (HF_TOKEN_PATH, AWS_SHARED_CREDENTIALS_FILE): its content is never copied into
    arguments, environment values, status or events. Not used with pvc://. Example: `hf-token`."""

    revision: Revision | None = None
    """A Hugging Face revision (branch, tag or commit) to pin the weights to (vLLM `--revision`).
    Only for hf:// sources. Pin a commit for reproducible rollouts. Example: `main`."""

    max_model_len: Annotated[int, Field(ge=16, le=16_777_216)] | None = None
    """Longest sequence (prompt plus generated tokens) the server accepts, in tokens (vLLM
    `--max-model-len`). Defaults to the model's own context length. Lowering it leaves more GPU
    memory for the KV cache, hence more concurrent sequences. Example: `8192`."""

    @model_validator(mode="after")
    def _credentials_and_revision_fit_the_scheme(self) -> Self:
        scheme = self.scheme
        if self.credentials_secret is not None and scheme == "pvc":
            raise NO_CREDENTIALS_FOR_PVC.violation(f"source {self.source}")
        if self.revision is not None and scheme != "hf":
            raise REVISION_NEEDS_HF.violation(f"source {self.source}")
        return self

    @property
    def scheme(self) -> Scheme:
        return split_source(self.source).scheme

    @property
    def parts(self) -> SourceParts:
        return split_source(self.source)
