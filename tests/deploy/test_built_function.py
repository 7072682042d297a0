"""The function as `sam build` left it, started the way Lambda starts it.

Lambda (through the Web Adapter's exec wrapper) runs the handler `run.sh` from the function's directory,
with our layer unpacked at /opt (so its `python/` is importable) and a bare managed Python: nothing from
this project's virtualenv. So a dependency missing from `layers/requirements.txt`, a module left out of
the layer, or a broken `run.sh` fails here, before a deploy would.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import jwt
import pytest
from chatbot import seed
from moto.server import ThreadedMotoServer

from tests.e2e.sse import read_stream
from tests.fakes.anthropic_api import FakeAnthropic, Reply

pytestmark = pytest.mark.sam

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"
FUNCTION_DIR = BUILD / "ChatbotFunction"
LAYER_PYTHON = BUILD / "ChatbotLayer" / "python"
STARTUP_SECONDS = 60
MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def _built_for() -> tuple[str, str]:
    """(runtime, architecture) the layer was built for, as `sam build` recorded them in build.toml."""
    record = tomllib.loads((BUILD.parent / "build.toml").read_text())
    [layer] = [d for d in record["layer_build_definitions"].values() if d["layer_name"] == "ChatbotLayer"]
    return layer["compatible_runtimes"][0], layer["architecture"]


def _deployed_runtime() -> str:
    """The runtime a deploy after this build would use: PYTHON_RUNTIME as `make deploy` passes it, else
    samconfig.toml's (`sam deploy`)."""
    if runtime := os.environ.get("PYTHON_RUNTIME"):
        return runtime
    overrides = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]["deploy"]["parameters"]
    match = re.search(r"PythonRuntime=(\S+)", overrides["parameter_overrides"])
    assert match is not None, "samconfig.toml's deploy parameter_overrides name no PythonRuntime"
    return match.group(1)


def _foreign_binaries(layer: Path, runtime: str, architecture: str) -> list[str]:
    """Compiled parts of the layer that the runtime cannot load: wheels tagged for another CPython or
    machine, and extension modules (`*.cpython-311-x86_64-linux-gnu.so`) named for another."""
    version = runtime.removeprefix("python").replace(".", "")
    machine = {"x86_64": "x86_64", "arm64": "aarch64"}[architecture]
    foreign = []
    for wheel in sorted(layer.glob("*.dist-info/WHEEL")):
        fields = [line.split(":", 1) for line in wheel.read_text().splitlines() if ":" in line]
        if ("Root-Is-Purelib", " true") in [(k, v) for k, v in fields]:
            continue
        tags = [value.strip() for key, value in fields if key == "Tag"]
        if not any(_loads(tag, version, machine) for tag in tags):
            foreign.append(f"{wheel.parent.name}: {', '.join(tags)}")
    for extension in sorted(layer.rglob("*.cpython-*.so")):
        abi = extension.name.split(".")[-2]  # cpython-311-x86_64-linux-gnu
        if not abi.startswith(f"cpython-{version}-{machine}-"):
            foreign.append(str(extension.relative_to(layer)))
    return foreign


def _loads(tag: str, version: str, machine: str) -> bool:
    """Whether CPython 3.`version` on Linux `machine` loads a wheel with this tag."""
    python, abi, platform_tag = tag.split("-")
    if not platform_tag.endswith(machine) or not platform_tag.startswith("manylinux"):
        return False
    if abi == "abi3":
        return python.startswith("cp3") and int(python[3:]) <= int(version[1:])
    return python == f"cp{version}" and abi == f"cp{version}"


def _interpreter(runtime: str) -> str | None:
    """A base Python of the layer's version (its compiled wheels load in no other), or None."""
    version = runtime.removeprefix("python")
    candidates = [shutil.which(f"python{version}")]
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        candidates.insert(0, getattr(sys, "_base_executable", sys.executable))
    for candidate in filter(None, candidates):
        # A pyenv shim exists for every installed version but fails for one not selected: ask it.
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def _skip_or_fail(reason: str) -> None:
    # CI builds before testing and sets CHATBOT_REQUIRE_SAM_BUILD, so a skip there would hide a failure.
    if os.environ.get("CHATBOT_REQUIRE_SAM_BUILD"):
        pytest.fail(reason)
    pytest.skip(reason)


def _require_build() -> None:
    if not (FUNCTION_DIR / "run.sh").exists() or not LAYER_PYTHON.is_dir():
        _skip_or_fail("no `sam build` output in .aws-sam/build: run `make build` first")


def test_the_layers_compiled_wheels_are_those_of_the_runtime_it_is_built_and_deployed_for() -> None:
    _require_build()
    runtime, architecture = _built_for()
    deployed = _deployed_runtime()
    assert runtime == deployed, (
        f"the layer was built for {runtime} but a deploy now would run {deployed}: build and deploy with "
        f"one PYTHON_RUNTIME (make build / make deploy PYTHON_RUNTIME=...)"
    )
    foreign = _foreign_binaries(LAYER_PYTHON, runtime, architecture)
    assert not foreign, (
        f"the layer in .aws-sam/build is for {runtime}/{architecture}, but these compiled parts are not "
        f"(a stale cached build, or pip not told the target: see layers/Makefile):\n" + "\n".join(foreign)
    )


def test_the_wheel_check_tells_a_cp311_layer_from_a_cp313_one(tmp_path: Path) -> None:
    """Guards the check above with a layer made here: pydantic_core built for 3.11, and one for 3.13."""
    for version in ("311", "313"):
        layer = tmp_path / version
        info = layer / "pydantic_core-2.41.5.dist-info"
        info.mkdir(parents=True)
        (info / "WHEEL").write_text(
            f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp{version}-cp{version}-manylinux_2_17_x86_64\n"
        )
        (layer / "pydantic_core").mkdir()
        (layer / "pydantic_core" / f"_pydantic_core.cpython-{version}-x86_64-linux-gnu.so").touch()
        pure = layer / "idna-3.10.dist-info"
        pure.mkdir()
        (pure / "WHEEL").write_text("Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    assert _foreign_binaries(tmp_path / "313", "python3.13", "x86_64") == []
    assert len(_foreign_binaries(tmp_path / "311", "python3.13", "x86_64")) == 2
    assert len(_foreign_binaries(tmp_path / "313", "python3.13", "arm64")) == 2


@pytest.fixture(scope="module")
def lambda_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare virtualenv (standard library only) of the built runtime's version: the managed runtime's stand-in."""
    _require_build()
    runtime, architecture = _built_for()
    if MACHINES.get(platform.machine().lower()) != architecture:
        _skip_or_fail(f"the layer was built for {architecture}, this machine is {platform.machine()}")
    base = _interpreter(runtime)
    if base is None:
        _skip_or_fail(f"the layer was built for {runtime} and no python{runtime[6:]} is on PATH")
    assert base is not None
    venv = tmp_path_factory.mktemp("lambda-python")
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def aws_endpoint() -> Iterator[str]:
    """A moto server standing in for DynamoDB and Secrets Manager."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@dataclass
class Deployment:
    """What the template would give the function: tables, secrets and their names."""

    app_table: str
    usage_table: str
    api_key: str
    api_key_secret_arn: str
    jwt_secret: str
    jwt_secret_arn: str


@pytest.fixture
def deployment(aws_endpoint: str) -> Deployment:
    """Tables created and seeded with the layer's own code, and the two secrets run.sh reads at start."""
    suffix = uuid.uuid4().hex[:8]
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=aws_endpoint)
    app_table, usage_table = f"AppData-{suffix}", f"ChatbotUsage-{suffix}"
    seed.create_tables(dynamodb, app_table, usage_table)
    seed.seed_demo_data(dynamodb, app_table)
    secrets = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=aws_endpoint)
    api_key, jwt_secret = f"sk-ant-{uuid.uuid4().hex}", uuid.uuid4().hex * 2
    return Deployment(
        app_table=app_table,
        usage_table=usage_table,
        api_key=api_key,
        api_key_secret_arn=secrets.create_secret(Name=f"anthropic-{suffix}", SecretString=api_key)["ARN"],
        jwt_secret=jwt_secret,
        jwt_secret_arn=secrets.create_secret(Name=f"jwt-{suffix}", SecretString=jwt_secret)["ARN"],
    )


@dataclass
class RunningFunction:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path


def _wait_healthy(function: RunningFunction) -> None:
    """Poll /healthz like the Web Adapter's readiness check, within a bound; fail early if run.sh died."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if function.process.poll() is not None:
            pytest.fail(f"run.sh exited with {function.process.returncode}:\n{function.log.read_text()}")
        try:
            if httpx.get(f"{function.base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"/healthz did not answer within {STARTUP_SECONDS}s:\n{function.log.read_text()}")
        time.sleep(0.05)


@pytest.fixture
def built_function(
    lambda_python: Path,
    aws_endpoint: str,
    deployment: Deployment,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[RunningFunction, FakeAnthropic]]:
    """The built run.sh serving on a free port, against moto and a fake Anthropic API that accepts only the
    key stored in Secrets Manager. Parametrized indirectly, the parameter is more environment."""
    with FakeAnthropic(api_key=deployment.api_key) as fake:
        port = _free_port()
        env = {
            # What Lambda provides: a PATH with the runtime's python, the task root, region and credentials.
            "PATH": f"{lambda_python}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "LAMBDA_TASK_ROOT": str(FUNCTION_DIR),
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            # Where the layer would be unpacked (/opt/python).
            "PYTHONPATH": str(LAYER_PYTHON),
            # What template.yaml sets.
            "PORT": str(port),
            "AWS_LWA_INVOKE_MODE": "response_stream",
            "AWS_LWA_READINESS_CHECK_PATH": "/healthz",
            "APP_TABLE": deployment.app_table,
            "CHATBOT_USAGE_TABLE": deployment.usage_table,
            "ANTHROPIC_API_KEY_SECRET_ARN": deployment.api_key_secret_arn,
            "AUTH_JWT_SECRET_ARN": deployment.jwt_secret_arn,
            # Local stand-ins for the AWS services and the Anthropic API.
            "AWS_ENDPOINT_URL_DYNAMODB": aws_endpoint,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": aws_endpoint,
            "ANTHROPIC_BASE_URL": fake.base_url,
            **getattr(request, "param", {}),
        }
        log = tmp_path / "function.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(FUNCTION_DIR / "run.sh")],
                cwd=FUNCTION_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        function = RunningFunction(f"http://127.0.0.1:{port}", process, log)
        try:
            _wait_healthy(function)
            yield function, fake
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


async def test_built_function_streams_an_answer_with_a_tool_call_to_done(
    built_function: tuple[RunningFunction, FakeAnthropic], deployment: Deployment
) -> None:
    function, fake = built_function
    fake.enqueue(
        Reply.tool_use("member_list", {"role": "admin"}, text_before="Let me look."),
        Reply.text("Alice Anders is the admin."),
    )
    token = jwt.encode(
        {"sub": "user_alice", "org_id": "org_acme", "exp": int(time.time()) + 300},
        deployment.jwt_secret,
        algorithm="HS256",
    )
    async with (
        httpx.AsyncClient(base_url=function.base_url, timeout=httpx.Timeout(30.0)) as client,
        client.stream(
            "POST",
            "/api/chatbot/message",
            json={"message": "Who are the admins here?"},
            headers={"authorization": f"Bearer {token}"},
        ) as response,
    ):
        stream = await read_stream(response)

    assert stream.status == 200, (stream.error_body, function.log.read_text())
    assert stream.last == {"type": "done", "stop_reason": "end_turn", "iterations": 2}, stream.events
    [result] = stream.of("tool_result")
    assert result["name"] == "member_list" and not result["is_error"], result
    assert "alice@acme.test" in result["content"]
    assert stream.text == "Let me look.Alice Anders is the admin."


SNAPSTART = {
    # What template.yaml sets with EnableSnapStart, and what Lambda says in a SnapStart sandbox.
    "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
    "AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH": "/snapstart/before-checkpoint",
    "AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH": "/snapstart/after-restore",
}


@pytest.mark.parametrize("built_function", [SNAPSTART], indirect=True)
def test_the_built_function_answers_the_adapters_snapstart_hooks(
    built_function: tuple[RunningFunction, FakeAnthropic],
) -> None:
    function, _ = built_function
    # The adapter's calls: before the snapshot, after the restore, then its readiness check.
    for path in (
        SNAPSTART["AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH"],
        SNAPSTART["AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH"],
    ):
        response = httpx.post(f"{function.base_url}{path}", timeout=10)
        assert response.status_code == 204, (path, response.text, function.log.read_text())
    assert httpx.get(f"{function.base_url}/healthz", timeout=10).status_code == 200
