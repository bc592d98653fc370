"""The ``faces`` pipeline: the label smoothing paper's setting (docs/protocol.md, "faces").

Targets learn FaceScrub's 530 or CelebA's 1000 most frequent identities from the user's
folders at 224 px with the paper's training settings; an evaluation model of another
architecture (Inception-v3) judges the attacks; PPA searches the latent space of a generator
the user supplies (a StyleGAN2-ADA pickle, or any ``nn.Module``). Planning is the image
pipeline's (evaluation model, one target per defense setting x seed, one attack per target x
attack setting); only the data (read lazily from folders), the prior (supplied, not trained)
and the task functions differ. ``data.generate`` swaps the data set for a tiny generated one
in the same folder layout: the smoke mode (``faces-smoke``, or ``run --suite faces --smoke``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

from lsmia_bench.attacks import ATTACKS
from lsmia_bench.attacks.priors.supplied import (
    check_supplied_prior,
    checkpoint_fingerprint,
)
from lsmia_bench.benchmark.config import Strict, build_components
from lsmia_bench.benchmark.jobs import Job
from lsmia_bench.benchmark.pipelines.image import (
    Architecture,
    Evaluation,
    ImageConfig,
    ImagePipeline,
    Privacy,
    Scheduler,
    plan_attacks,
    plan_prerequisites,
    plan_targets,
)
from lsmia_bench.defenses import DEFENSES
from lsmia_bench.kernel.errors import UserError

TRAIN_TASK = "lsmia_bench.benchmark.pipelines.face_tasks:train_face_classifier"
CACHE_TASK = "lsmia_bench.benchmark.pipelines.face_tasks:build_face_image_cache"
ATTACK_TASK = "lsmia_bench.benchmark.pipelines.face_tasks:attack_face_target"


def absolute_path(path: str | None) -> str | None:
    """A user's path made absolute: trials run in other working directories (Ray)."""
    return str(Path(path).expanduser().resolve()) if path else path


#: A path made absolute when the config is read.
UserPath = Annotated[str | None, AfterValidator(absolute_path)]


class GeneratedFaces(Strict):
    """A tiny fake data set in the source's folder layout (smoke runs); see
    ``benchmark/data/fake_faces.py``."""

    identities: int = Field(8, ge=2, le=400)
    images_per_identity: int = Field(10, ge=2)
    size: int = Field(32, ge=8)
    seed: int = 0


class FaceData(Strict):
    source: Literal["facescrub", "celeba"]
    #: The data set's folder; null with ``generate`` set.
    root: UserPath = None
    #: CelebA only: the image folder, relative to ``root`` or absolute (the paper's face crops).
    image_folder: str | None = None
    train_fraction: float = Field(0.9, gt=0, lt=1)
    split_seed: int = 42
    #: FaceScrub only: stop unless exactly this many identity folders are found.
    expected_identities: int | None = Field(None, ge=1)
    #: CelebA only: how many of the most frequent identities.
    num_identities: int = Field(1000, ge=2)
    image_size: int = Field(224, ge=16)
    #: DataLoader worker processes (and image-reading threads) per trial.
    num_workers: int = Field(8, ge=0)
    generate: GeneratedFaces | None = None
    #: How training batches are made (docs/faces.md, "Input path"): "pil", DataLoader workers
    #: decode and augment each image on the CPU (the paper's code); "cached", a prerequisite
    #: job decodes and resizes every image once into memory-mapped uint8 arrays and the same
    #: random augmentations run per batch on the training device (GPU runs).
    input: Literal["pil", "cached"] = "pil"



class FaceAugmentation(Strict):
    """The paper's training transform (``face_train_transform``)."""

    resized_crop_scale: tuple[float, float] = (0.85, 1.0)
    resized_crop_ratio: tuple[float, float] = (1.0, 1.0)
    color_jitter: tuple[float, float, float, float] | None = (0.2, 0.2, 0.1, 0.1)
    flip: float = Field(0.5, ge=0, le=1)


class FaceTraining(Strict):
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(128, ge=2)
    scheduler: Scheduler = Field(default_factory=lambda: Scheduler(milestones=[0.75, 0.9]))
    augmentation: FaceAugmentation = Field(default_factory=FaceAugmentation)
    #: null / fp32: full precision (the paper); bf16 or fp16: mixed precision (GPU).
    precision: Literal["fp32", "bf16", "fp16"] | None = None
    #: Test accuracy is measured every this many epochs (and after the last).
    eval_every: int = Field(1, ge=1)
    #: Train in channels_last memory format; null: on CUDA devices only (faster convolutions
    #: with tensor cores; on the CPU it would change fp32 results).
    channels_last: bool | None = None
    #: torch.compile the model before training (slow start-up; off by default).
    compile: bool = False


class FaceEvaluation(Evaluation):
    training: FaceTraining | None = None


class SuppliedPrior(Strict):
    """The generator PPA searches (``attacks/priors/supplied.py``)."""

    kind: Literal["stylegan2_ada", "module", "tiny_stylegan"] = "stylegan2_ada"
    checkpoint: UserPath = None
    stylegan_repo: UserPath = None
    generator: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    latent_dim: int = Field(512, ge=1)
    value_range: tuple[float, float] = (-1.0, 1.0)
    truncation_psi: float = Field(0.5, gt=0, le=1)
    truncation_cutoff: int | None = 8
    single_w: bool = True
    center_crop: int | None = Field(800, ge=1)



class StudentAugmentation(Strict):
    """The knowledge extraction student's batch transform (``student_augmentation``); PPA's
    ``knowledge_extraction_score.py``: RandomResizedCrop(scale 0.8-1, ratio 1), flip, clamp."""

    resized_crop_scale: tuple[float, float] = (0.8, 1.0)
    resized_crop_ratio: tuple[float, float] = (1.0, 1.0)
    flip: float = Field(0.5, ge=0, le=1)

    @field_validator("resized_crop_scale")
    @classmethod
    def _scale_range(cls, scale: tuple[float, float]) -> tuple[float, float]:
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError("[low, high] with 0 < low <= high <= 1")
        return scale


class FacePrivacy(Privacy):
    #: FaceNet (VGGFace2) weights for delta_face: a file, null for the torch hub cache
    #: (missing metric when absent), or "random" (smoke runs: the code path only).
    facenet_weights: str | None = None
    #: pytorch-fid's FID Inception weights (pt_inception-2015-12-05-6726825d.pth) for FID and
    #: PRDC: a file, or null for the torch hub cache; when absent, both are computed in the
    #: evaluation model's features and recorded as such (feature_space).
    fid_inception_weights: UserPath = None
    #: xi's student architecture; null: the target's.
    student: Architecture | None = None
    #: xi's student batch transform; null: none.
    student_augmentation: StudentAugmentation | None = None


class FacesConfig(ImageConfig):
    pipeline: Literal["faces"] = "faces"  # type: ignore[assignment]
    data: FaceData  # type: ignore[assignment]
    training: FaceTraining  # type: ignore[assignment]
    evaluation: FaceEvaluation  # type: ignore[assignment]
    prior: SuppliedPrior = Field(default_factory=SuppliedPrior)
    privacy: FacePrivacy = Field(default_factory=FacePrivacy)  # type: ignore[assignment]
    #: Attack the identities with labels 0..N-1; null attacks all (PPA's code).
    attack_identities: int | None = Field(None, ge=1)


def face_data_spec(config: FacesConfig) -> dict[str, Any]:
    """The ``data`` section as stored in job specs (a generated data set keeps no root)."""
    data = config.data.model_dump(mode="json")
    if data["generate"]:
        data["root"] = None
    return data


def prior_spec(config: FacesConfig) -> dict[str, Any]:
    """The ``prior`` section as stored in attack specs, with the checkpoint's fingerprint."""
    return config.prior.model_dump(mode="json") | checkpoint_fingerprint(
        config.prior.model_dump())


class FacesPipeline(ImagePipeline):
    schema = FacesConfig

    def check(self, config: FacesConfig) -> None:  # type: ignore[override]
        import torch

        from lsmia_bench.benchmark.data.face_suite import load_face_splits
        from lsmia_bench.benchmark.metrics.features import FID_WEIGHTS, find_weights
        from lsmia_bench.benchmark.models import build_classifier

        if config.evaluation.name == config.target.name:
            raise UserError("evaluation.name", config.evaluation.name,
                            f"Pick an architecture other than target.name "
                            f"({config.target.name!r}) for the evaluation model.",
                            problem="the evaluation model must be another architecture")
        if config.data.root is None and config.data.generate is None:
            raise UserError("data.root", None, "Give the folder of the data set: data.root in "
                            "the suite file, --data-root PATH or --set data.root=PATH "
                            "(docs/faces.md); or try the suite without data: --smoke.",
                            problem=f"no {config.data.source} folder given")
        splits = load_face_splits(face_data_spec(config))  # data present and well formed
        size, classes = config.data.image_size, splits.num_classes
        architectures = [("target", config.target), ("evaluation", config.evaluation)]
        if config.privacy.student is not None:
            architectures.append(("privacy.student", config.privacy.student))
        for field, arch in architectures:
            # With their real parameters: a named ImageNet weights file must exist now.
            build_classifier(arch.name, arch.params, 3, size, classes, field=field)
        find_weights(config.privacy.fid_inception_weights, FID_WEIGHTS,
                     "privacy.fid_inception_weights")  # a named file must exist now
        for index, spec in enumerate(config.attacks):
            cls = ATTACKS.get(spec.name, field=f"attacks[{index}].name")
            if cls.needs_discriminator:
                raise UserError(f"attacks[{index}].name", spec.name, "Use ppa or mi_face: the "
                                "faces suite supplies a pre-trained generator without the "
                                "discriminator this attack's loss needs.",
                                problem="attack needs a GAN discriminator")
        if any(ATTACKS.get(s.name).needs_prior for s in config.attacks):
            check_supplied_prior(config.prior.model_dump())

        def probe() -> tuple[Any, Any, Any, int, frozenset[str]]:
            """A small untrained target and random faces, to run each defense once; the faces
            training gives neither per-example access nor a public split."""
            from lsmia_bench.benchmark.models.torchvision_nets import TORCHVISION_ARCHITECTURES

            params = config.target.params | ({"pretrained": False} if config.target.name
                                             in TORCHVISION_ARCHITECTURES else {})
            model = build_classifier(config.target.name, params, 3, size, classes,
                                     field="target")
            labels = torch.arange(4) % classes
            return model, torch.rand(4, 3, size, size), labels, classes, frozenset()

        build_components(config.defenses, DEFENSES, "defenses", probe=probe)
        build_components(config.attacks, ATTACKS, "attacks")

    def plan(self, config: FacesConfig) -> list[Job]:  # type: ignore[override]
        data = face_data_spec(config)
        prerequisites = plan_prerequisites(config, data, TRAIN_TASK, priors=False)
        targets = plan_targets(config, data, TRAIN_TASK)
        attacks = plan_attacks(config, prerequisites, targets, data, ATTACK_TASK,
                               prior=prior_spec(config),
                               extra={"attack_identities": config.attack_identities,
                                      "student": (config.privacy.student
                                                  or config.target).model_dump()})
        jobs = [*prerequisites.values(), *targets, *attacks]
        if config.data.input == "cached":
            jobs = with_image_cache(jobs, data)
        return jobs


def image_cache_job(data: dict[str, Any]) -> Job:
    """The prerequisite that decodes the data set once (``data.input: cached``)."""
    return Job(stage="prerequisites", task=CACHE_TASK,
               name=f"image cache {data['source']} {data['image_size']} px",
               spec={"data": data}, labels={"role": "image_cache"})


def with_image_cache(jobs: list[Job], data: dict[str, Any]) -> list[Job]:
    """The image cache job first, and every job that reads the data needing it as
    ``images``; a job's ``needs`` on a changed job follow the change (keys are hashes)."""
    cache = image_cache_job(data)
    renamed: dict[str, str] = {}
    out = [cache]
    for job in jobs:  # planned order: a job's inputs come before it
        needs = {role: renamed.get(key, key) for role, key in job.needs.items()}
        changed = replace(job, needs=needs | {"images": cache.key})
        renamed[job.key] = changed.key
        out.append(changed)
    return out

