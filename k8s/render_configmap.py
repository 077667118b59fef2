"""Write k8s/configmap.yaml from config/streamer.yaml and config/schema.yaml, verbatim.

kustomize refuses files outside the base directory, so the ConfigMap carries copies;
tests/ops checks they still match. Run `make k8s-config` after editing config/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> Any:
    return dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    )


_Dumper.add_representer(str, _str)


def render() -> str:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "streamer-config", "labels": {"app.kubernetes.io/name": "streamer"}},
        "data": {
            "streamer.yaml": (ROOT / "config/streamer.yaml").read_text(),
            "schema.yaml": (ROOT / "config/schema.yaml").read_text(),
        },
    }
    header = (
        "# config/streamer.yaml and config/schema.yaml, verbatim (tests/ops checks they match;\n"
        "# regenerate with `make k8s-config`).\n"
    )
    return header + yaml.dump(configmap, Dumper=_Dumper, sort_keys=False, width=1000)


if __name__ == "__main__":
    (ROOT / "k8s/configmap.yaml").write_text(render())
