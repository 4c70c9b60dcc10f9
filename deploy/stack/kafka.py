"""An Apache Kafka 4.x broker in KRaft mode (combined broker and controller).

The jars come from Maven Central through `mvn` and the pinned pom beside this
package (deploy/kafka/pom.xml); Maven's own repository (~/.m2) is the cache, and
the copied jars stay under the stack folder until the pom changes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from deploy.stack.processes import live_pid, port_answers, port_is_free, terminate, wait_until

POM = Path(__file__).resolve().parent.parent / "kafka" / "pom.xml"
MAIN_CLASS = "kafka.Kafka"


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()[:16]


def broker_answers(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when the broker answers a metadata request (not merely accepts TCP)."""
    from aiokafka.admin import AIOKafkaAdminClient

    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if host in {"127.0.0.1", "localhost"} and not port_answers(int(port)):
        return False

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await asyncio.wait_for(admin.start(), timeout_s)
            await asyncio.wait_for(admin.describe_cluster(), timeout_s)
            return True
        except Exception:
            return False
        finally:
            await admin.close()

    return asyncio.run(probe())


@dataclass(frozen=True)
class KafkaBroker:
    """One broker under `root`: libs/ (jars), data/, server.properties, kafka.log."""

    root: Path

    @property
    def libs(self) -> Path:
        return self.root / "libs"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "kafka.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "kafka.pid"

    def running_pid(self) -> int | None:
        return live_pid(self.pid_file, MAIN_CLASS)

    def fetch_jars(self) -> None:
        """Copy the broker's runtime jars next to the stack, once per pom version."""
        stamp = self.libs / ".pom-digest"
        if stamp.exists() and stamp.read_text() == _pom_digest():
            return
        if shutil.which("mvn") is None:
            raise FileNotFoundError("mvn not found: install Maven (apt-get install maven)")
        shutil.rmtree(self.libs, ignore_errors=True)
        result = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={self.libs}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"mvn could not fetch the Kafka jars:\n{result.stdout}{result.stderr}"
            )
        stamp.write_text(_pom_digest())

    def start(self, port: int, controller_port: int) -> None:
        """Fetch, format (first time) and start the broker; a no-op when running."""
        if self.running_pid() is not None:
            return
        for p in (port, controller_port):
            if not port_is_free(p):
                raise OSError(f"port {p} for Kafka is taken by another process")
        self.root.mkdir(parents=True, exist_ok=True)
        self.fetch_jars()
        properties = self._write_properties(port, controller_port)
        if not (self.data / "meta.properties").exists():
            self._format(properties)
        java = shutil.which("java") or "java"
        heap = os.environ.get("METERING_KAFKA_HEAP", "-Xms256m -Xmx1g").split()
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                [
                    java,
                    *heap,
                    "-XX:+UseG1GC",
                    "-Djava.awt.headless=true",
                    f"-Dlog4j2.configurationFile={self._write_log_config()}",
                    "-cp",
                    f"{self.libs}/*",
                    MAIN_CLASS,
                    str(properties),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.root,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        bootstrap = f"127.0.0.1:{port}"

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"Kafka exited with {process.returncode}; see {self.log}")
            return broker_answers(bootstrap, timeout_s=3)

        wait_until(ready, "Kafka", 90, self.log)

    def stop(self) -> None:
        pid = self.running_pid()
        if pid is not None:
            terminate(pid, MAIN_CLASS, grace_s=30)
        self.pid_file.unlink(missing_ok=True)

    def wipe(self) -> None:
        """Forget the broker's data (topics, offsets); the jars stay."""
        shutil.rmtree(self.data, ignore_errors=True)

    def _format(self, properties: Path) -> None:
        shutil.rmtree(self.data, ignore_errors=True)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            [
                "java",
                "-cp",
                f"{self.libs}/*",
                f"-Dlog4j2.configurationFile={self._write_log_config()}",
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",  # one "=" word: an id may start with "-"
                "-c",
                str(properties),
                "--standalone",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def _write_properties(self, port: int, controller_port: int) -> Path:
        path = self.root / "server.properties"
        path.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.data}",
                    "num.partitions=4",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=8",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    # Correctness rule 7: retention must age records by arrival, not by
                    # the (possibly backdated) event time.
                    "log.message.timestamp.type=LogAppendTime",
                    "auto.create.topics.enable=true",
                    "message.max.bytes=2097152",
                    "",
                ]
            )
        )
        return path

    def _write_log_config(self) -> Path:
        path = self.root / "log4j2.properties"
        if not path.exists():
            path.write_text(
                "rootLogger.level=INFO\n"
                "rootLogger.appenderRef.out.ref=out\n"
                "appender.out.type=Console\n"
                "appender.out.name=out\n"
                "appender.out.layout.type=PatternLayout\n"
                "appender.out.layout.pattern=[%d] %p %m (%c)%n\n"
                "logger.kafka.name=kafka\nlogger.kafka.level=WARN\n"
                "logger.apache.name=org.apache.kafka\nlogger.apache.level=WARN\n"
                "logger.started.name=kafka.server.KafkaRaftServer\nlogger.started.level=INFO\n"
            )
        return path
