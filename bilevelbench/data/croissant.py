"""Dataset cards for released instance sets: a Croissant (JSON-LD) description of the file, its fields and splits,
valid under the ``mlcroissant`` validator, and a human-readable card.

The Croissant description has one file object (the HDF5 file: name, size, SHA-256) and one record set per split.
A field names its HDF5 dataset (``extract.column = "params/c"``), its type and its shape per instance; the rows of
a split are the instance indices in ``/splits/<split>``. A hidden split of a public release lists its parameters
only. The card says how the labels were certified, how each split's labels ended (status counts), the content
digest a regeneration must match, the license and how to cite.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bilevelbench.errors import UsageError

CITATION = ("@misc{bilevelbench, title = {bilevelbench: certified instance sets and a common evaluator for learning "
            "to optimize bilevel and mixed-integer parametric problems}, year = {2026}}")
HOMEPAGE = "https://github.com/bilevelbench/bilevelbench"


def _mlcroissant():
    try:
        import mlcroissant
    except ImportError:
        raise UsageError("dataset cards need mlcroissant (the Croissant reference library): pip install "
                         "'bilevelbench[cards]'") from None
    return mlcroissant


def _data_type(mlc, array: np.ndarray):
    kind = array.dtype.kind
    if kind == "f":
        return mlc.DataType.FLOAT
    if kind in "iu":
        return mlc.DataType.INTEGER
    if kind == "b":
        return mlc.DataType.BOOL
    return mlc.DataType.TEXT


def _license(ds) -> str:
    """The family's data license (``Family.data_license``)."""
    return ds.family_descriptor.data_license


def croissant_metadata(path: Path | str, url: str | None = None) -> dict:
    """The Croissant JSON-LD of an instance-set file (``url``: where the file is served; its name by default).

    Raises
    ------
    UsageError
        If ``mlcroissant`` is not installed, or it reports an error in the description.
    """
    import pooch

    from bilevelbench.data.instance_set import InstanceSet

    mlc = _mlcroissant()
    path = Path(path)
    ds = InstanceSet.open(path)
    meta = ds.meta
    name = str(meta.get("name") or path.stem)
    hidden = set(meta.get("hidden_splits") or [])
    file_id = path.name
    distribution = [mlc.FileObject(id=file_id, name=file_id, content_url=url or path.name,
                                   content_size=f"{path.stat().st_size} B", encoding_formats=["application/x-hdf5"],
                                   sha256=pooch.file_hash(str(path)),
                                   description=f"HDF5 instance set (docs/format.md); content digest "
                                               f"{ds.content_digest()}")]
    record_sets = []
    data = ds.data
    for split, rows in data.splits.items():
        if len(rows) == 0:
            continue
        fields = []
        groups = [("params", data.params)] + ([] if split in hidden else [("labels", data.labels)])
        for group, arrays in groups:
            for key, array in arrays.items():
                array = np.asarray(array)
                shape = list(array.shape[1:])
                fields.append(mlc.Field(
                    id=f"{split}/{group}/{key}", name=f"{group}/{key}", data_types=[_data_type(mlc, array)],
                    is_array=bool(shape) or None, array_shape=",".join(map(str, shape)) if shape else None,
                    description=f"/{group}/{key}, rows /splits/{split}" + (f", shape {tuple(shape)} per instance"
                                                                           if shape else ""),
                    source=mlc.Source(file_object=file_id, extract=mlc.Extract(column=f"{group}/{key}"))))
        what = "parameters only (hidden: scored by the service)" if split in hidden else "parameters and labels"
        record_sets.append(mlc.RecordSet(id=split, name=split, fields=fields,
                                         description=f"the {split} split: {len(rows)} instances, {what}"))
    spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
    description = str(spec.get("description") or f"{ds.family} instance set {meta.get('size', '')}")
    md = mlc.Metadata(name=name, description=description, url=HOMEPAGE, license=[_license(ds)],
                      version=str(meta.get("bilevelbench_version", "0.0.0")), cite_as=CITATION,
                      distribution=distribution,
                      record_sets=record_sets, conforms_to="http://mlcommons.org/croissant/1.1",
                      keywords=["bilevel optimization", "learning to optimize", ds.family])
    errors = list(md.ctx.issues.errors)
    if errors:
        raise UsageError(f"{path}: the Croissant description has errors: {'; '.join(map(str, errors))[:500]}")
    return md.to_json()


def dataset_card(path: Path | str) -> str:
    """A Markdown card: what the set is, how its labels were certified, status counts per split, digest, license,
    citation and known limits."""
    from bilevelbench.data.instance_set import InstanceSet

    path = Path(path)
    ds = InstanceSet.open(path)
    meta, family = ds.meta, ds.family_descriptor
    name = str(meta.get("name") or path.stem)
    spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
    lines = [f"# {name}", "", str(spec.get("description") or family.title), "",
             f"- **Family:** `{ds.family}` ({family.title}); docs: `{family.docs}`",
             f"- **Size:** {meta.get('size', '')}; seed {meta.get('seed')}; generator {meta.get('generator_version')}, "
             f"bilevelbench {meta.get('bilevelbench_version')}",
             (f"- **Content digest of this public copy:** `{ds.content_digest()}`" if meta.get("public") else
              f"- **Content digest:** `{ds.content_digest()}` (what `bilevelbench fetch {name} --regenerate` "
              "must reproduce)"),
             f"- **License:** {_license(ds)}" + (f" ({family.data_license_note})" if family.data_license_note
                                                  else ""),
             "", "## How the labels were certified", "",
             f"Exact method: `{family.exact_solver}`; independent re-check by `bilevelbench verify`"
             + (f"; `verify --oracle`: {family.oracle_method}." if family.oracle_method else "."),
             f"Certifier settings: `{json.dumps(meta.get('certifier_settings', {}), sort_keys=True)}`.",
             f"Solvers: {', '.join(f'{k}: {v}' for k, v in (meta.get('backend_versions') or {}).items())}.",
             "", "## Splits", "", "| split | instances | label statuses |", "|---|---|---|"]
    status = np.asarray(ds.data.labels["status"]).astype(str)
    for split, rows in ds.data.splits.items():
        values, counts = np.unique(status[np.asarray(rows, dtype=np.int64)], return_counts=True)
        text = ", ".join(f"{c} {v}" for v, c in zip(values, counts)) or "empty"
        lines.append(f"| {split} | {len(rows)} | {text} |")
    lines += ["", "## Known limits", "",
              "- A label that failed a check keeps its place with status `failed` and its reason; it stores no "
              "solution. Count them above before using a split.",
              "- `best_known` labels (where present) carry no optimality proof.",
              "- Timings (`solve_time`) depend on the machine and are left out of the content digest.",
              "", "## Citation", "", "```bibtex", CITATION, "```", ""]
    if meta.get("public"):
        lines.insert(4, f"- **Public release:** the {', '.join(meta.get('hidden_splits', []))} split keeps its "
                        "parameters only; the full file is held by the scoring service "
                        f"(`{meta.get('private_content_digest')}`).")
    return "\n".join(lines)


def write_cards(path: Path | str, out: Path | str, url: str | None = None) -> tuple[Path, Path]:
    """Write ``NAME.croissant.json`` and ``NAME.card.md`` for an instance-set file into ``out``."""
    path, out = Path(path), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = path.name.removesuffix(".h5")
    jsonld = out / f"{stem}.croissant.json"
    jsonld.write_text(json.dumps(croissant_metadata(path, url), indent=1, default=str) + "\n")
    card = out / f"{stem}.card.md"
    card.write_text(dataset_card(path))
    return jsonld, card
