import subprocess
import sys
from pathlib import Path

from zoo_server import MODEL

import dt_zoo

SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(message)s")
import dt_zoo
print(dt_zoo.get_weights(sys.argv[2], manifest=dt_zoo.load_manifest(sys.argv[1]), progress=False))
"""


def test_two_processes_download_once_and_share_the_file(server, manifest_file, cache):
    name = "Test-InstanceSegmentation/mask_tiny_3x"
    url = dt_zoo.info(name, manifest=dt_zoo.load_manifest(manifest_file)).weights.urls[0]
    server.delay = 1.0  # the first download is still running when the second process asks
    command = [sys.executable, "-c", SCRIPT, str(manifest_file), name]
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    assert [code for _, _, code in results] == [0, 0], results
    paths = {out.strip() for out, _, _ in results}
    assert len(paths) == 1
    assert Path(paths.pop()).read_bytes() == MODEL
    assert server.gets(url.removeprefix(server.base)) == 1
    assert sum("waiting for another process downloading" in err for _, err, _ in results) == 1
