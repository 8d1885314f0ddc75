"""One typed settings object, built from defaults < TOML file < environment < CLI flags.

It is created once by the CLI (or a test) and passed down; nothing reads it from a global.
The TOML file lives at ``<data_dir>/pocketstack.toml``; sections mirror the dataclasses
below (``[identity]``, ``[database]``...). Environment variables are ``POCKETSTACK_<FIELD>``
for top-level fields and ``POCKETSTACK_<SECTION>__<FIELD>`` for nested ones.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/pocketstack")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pocketstack"


@dataclass
class DatabaseSettings:
    # Empty means the embedded SQLite file <data_dir>/pocketstack.db.
    url: str = ""
    echo: bool = False
    pool_size: int = 10


@dataclass
class IdentitySettings:
    admin_password: str = ""  # empty: generated once, stored in <data_dir>/passwords.json (0600)
    demo_password: str = ""
    token_expiration: int = 3600  # seconds, like keystone [token] expiration
    max_active_keys: int = 3  # fernet key repository size, like keystone
    # argon2id cost; the defaults keep a password login well under 50 ms on 2 cores.
    argon2_time_cost: int = 2
    argon2_memory_cost: int = 19456  # KiB (OWASP's minimum for argon2id)
    argon2_parallelism: int = 1
    token_cache_seconds: float = 2.0  # validated-token cache; revocations in-process are immediate
    region: str = "RegionOne"
    # Keystone's [security_compliance]; 0 disables each, as in Keystone.
    lockout_failure_attempts: int = 0  # failed logins before the account locks
    lockout_duration: int = 0  # seconds it stays locked (0 with attempts set: until reset)
    unique_last_password_count: int = 0  # new password must differ from this many previous
    minimum_password_age: int = 0  # days before a password may be changed again
    password_expires_days: int = 0  # 0: passwords never expire


@dataclass
class VolumeSettings:
    # "auto": "file" when root with losetup and qemu-img, else "fake" (noted in cloud.degraded).
    # "lvm" is opt-in and needs the volume group below to exist.
    driver: str = "auto"
    file_format: str = "raw"  # raw or qcow2 (qcow2 is exported through qemu-nbd)
    volume_group: str = "cinder-volumes"
    thin_pool: str = ""  # empty: "<volume_group>-pool", created on first use
    backend_name: str = ""  # empty: the driver's name; shows in host "pocketstack@<backend>#<pool>"
    availability_zone: str = "nova"
    fake_capacity_gb: int = 10240  # what the fake driver reports (scale runs)
    workers: int = 4  # threads driving slow driver calls (create, copy, delete)


@dataclass
class ComputeSettings:
    # "auto": "container" when root with runc and user namespaces usable, else "fake" (noted in
    # cloud.degraded). "fake" simulates ``fake_hosts`` hypervisors of the size below.
    driver: str = "auto"
    fake_hosts: int = 3
    fake_host_vcpus: int = 40
    fake_host_memory_mb: int = 262144
    fake_host_disk_gb: int = 1600
    # PCI devices on each fake host, "vendor:product:count[,...]" e.g. "10de:1028:2".
    fake_pci_devices: str = ""
    # nova.conf [pci] alias / passthrough_whitelist, as JSON objects or lists of them.
    pci_alias: str = ""
    pci_passthrough_whitelist: str = ""
    # nova.conf [filter_scheduler] enabled_filters / weight_classes (comma separated names).
    enabled_filters: str = ("RetryFilter,AvailabilityZoneFilter,RamFilter,DiskFilter,"
                            "ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,"
                            "ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,"
                            "SameHostFilter,DifferentHostFilter,PciPassthroughFilter")
    weighers: str = "RAMWeigher,CPUWeigher"
    ram_weight_multiplier: float = 1.0
    cpu_weight_multiplier: float = 1.0
    max_placement_results: int = 1000  # candidates handed to the filters, as placement does
    max_attempts: int = 3  # builds rescheduled to another host on failure
    # nova.conf [DEFAULT] shelved_offload_time: seconds a shelved server keeps its host
    # before it is offloaded; 0 offloads at once (Nova's default), -1 never.
    shelved_offload_time: int = 0
    # nova.conf [DEFAULT] force_config_drive: every server gets a config drive.
    force_config_drive: bool = False
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0
    reserved_host_memory_mb: int = 512
    default_availability_zone: str = "nova"
    max_user_data_bytes: int = 65535
    workers: int = 8  # threads driving driver calls
    service_down_time: int = 60  # seconds without heartbeat before a host is "down"
    # container driver
    # Servers run under runc (an OCI spec from drivers/compute/oci.py) with a user
    # namespace: each guest's root is host uid container_idmap_base + n * 65536, a range of
    # its own (the registry of ranges is machine-wide, in container_idmap_registry).
    container_cpu_period_us: int = 100000
    container_pids_max: int = 1024  # processes per server (a fork bomb stays inside)
    container_idmap_base: int = 1_000_000_000
    container_idmap_registry: str = "/var/lib/pocketstack/idmap"
    # qemu driver: "auto" uses KVM when a probe boot shows it at least about as fast as
    # TCG (nested KVM can be far slower), else TCG; or force "kvm" / "tcg".
    qemu_accel: str = "auto"
    # Remote consoles: one-time tokens live this long (nova [consoleauth] token_ttl).
    console_token_ttl: int = 600
    # Base of the console URLs handed out (e.g. "https://cloud.example.com:8443"); empty: the
    # scheme and Host of the request that asked for the URL.
    console_base_url: str = ""
    # Extra Origins (host or host:port, comma separated) whose pages may open console
    # WebSockets; the console URL's own host is always allowed (nova console_allowed_origins).
    console_allowed_origins: str = ""


@dataclass
class ImageSettings:
    # Like glance [image_format] require_image_format_match: refuse uploads whose content
    # does not prove the declared disk_format. Unsafe content (qcow2 backing/data files,
    # a rich format under another name, malformed headers, VMDK descriptors) is refused
    # whatever this says.
    require_format_match: bool = True
    seed_default_image: bool = True  # build and upload a busybox image at first start
    store: str = "filesystem"  # drivers/images registry: filesystem, fake
    image_size_cap: int = 1024 ** 4  # bytes per image (glance image_size_cap)
    # Per-project quotas (glance's unified-limit names); -1 means unlimited. Keystone
    # limits for service "glance" override these when the identity slice provides them.
    image_count_total: int = -1
    image_size_total: int = -1  # MiB, as glance's image_size_total limit
    image_stage_total: int = -1  # MiB
    limit_param_default: int = 25
    api_limit_max: int = 1000
    # Multiple stores (glance enabled_backends). Empty: ONE store "local" of driver
    # ``store`` in <data_dir>/images. Else a table per store id, e.g.
    #   [image.stores.fast]  driver = "filesystem", weight = 100, description = "SSD",
    #                        path = "/srv/images-fast"   (empty path: <data_dir>/images-<id>)
    # Weights order an image's ``stores`` (highest first) and which copy is read.
    stores: dict[str, Any] = field(default_factory=dict)
    default_store: str = ""  # empty: the first configured store
    # Interoperable import methods offered (glance enabled_import_methods). copy-image is
    # only offered when there is more than one store, as in Glance. web-download and
    # glance-download make this server fetch URLs for its users; they are opt-in here
    # (add them, and set the web_download_* filtering to the hosts and ports you mean).
    import_methods: str = "glance-direct,copy-image"
    # web-download URL filtering (glance [import_filtering_opts]); when an allowed list is
    # set its disallowed list is ignored, as in Glance. Ports default to 80/443 only.
    web_download_allowed_schemes: str = "http,https"
    web_download_disallowed_schemes: str = ""
    web_download_allowed_hosts: str = ""
    web_download_disallowed_hosts: str = ""
    web_download_allowed_ports: str = "80,443"
    web_download_disallowed_ports: str = ""
    web_download_timeout: float = 60.0  # seconds without progress before giving up
    # glance-download copies the source image's properties with these prefixes (glance
    # [glance_download_properties] extra_properties); its URLs pass the filtering above.
    glance_download_properties: str = "hw_,trait:,os_distro,os_secure_boot,os_type"
    # glance show_multiple_locations: images show ``locations`` (store URLs, which name
    # host paths) and PATCH may add/replace/remove them. Off by default, as in Glance.
    show_multiple_locations: bool = False
    # glance do_secure_hash: locations added with POST /v2/images/{id}/locations get their
    # checksum and os_hash_value computed by reading the data (and checked against the
    # validation_data given).
    do_secure_hash: bool = True
    # Glance's image cache (cache management API, GET/PUT/DELETE /v2/cache): local copies
    # in <data_dir>/image-cache, served to downloads and to compute; least recently used
    # copies go when the total passes image_cache_max_size (bytes).
    image_cache: bool = False
    image_cache_max_size: int = 10 * 1024 ** 3


@dataclass
class NetworkSettings:
    # "linux" (bridges, namespaces, nftables, dnsmasq; needs root) or "fake"; empty picks
    # linux when it can work here, else fake (and says so in cloud.degraded).
    driver: str = ""
    # physnet -> host interface to attach (comma separated "physnet:iface" pairs). A physnet
    # that is not mapped gets a bridge pocketstack creates; nothing else on the host is touched.
    physnet_mappings: str = ""
    # Physical networks provider networks may use; empty accepts any name.
    physnets_allowed: str = ""
    # DevStack's first-start topology: a "public" external flat network on physnet "public"
    # (a host bridge with the host at .1) and private network + router for the demo project.
    create_default_networks: bool = True
    # Empty: DevStack's 172.24.4.0/24, or with the linux data plane the first 172.24.N.0/24
    # that no host interface or route uses yet (another cloud on this host may hold it),
    # chosen once at first start. Set, it is used as given.
    public_cidr: str = ""
    private_cidr: str = "10.0.0.0/26"
    dns_nameservers: str = ""
    host: str = ""  # binding host name for this node; default: the machine's hostname
    # VXLAN tunnel endpoint of this host. Empty: one host, tenant networks are plain bridges
    # (a VXLAN device per network only matters once several hosts share the segments).
    vxlan_local_ip: str = ""

    def physnets(self) -> set[str]:
        return {p.strip() for p in self.physnets_allowed.split(",") if p.strip()}

    def mappings(self) -> dict[str, str]:
        out = {}
        for pair in self.physnet_mappings.split(","):
            if ":" in pair:
                name, iface = pair.split(":", 1)
                out[name.strip()] = iface.strip()
        return out


@dataclass
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8800
    # Address clients should use in the catalog; default http://<host>:<port>.
    public_url: str = ""
    max_body_bytes: int = 1024 * 1024  # JSON bodies; data uploads stream and are not limited by this
    log_level: str = "info"
    # Threads running the APIs' synchronous work (DB, files); 0 = 4 per CPU, at most 32.
    worker_threads: int = 0
    bootstrap_demo: bool = True
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    image: ImageSettings = field(default_factory=ImageSettings)
    compute: ComputeSettings = field(default_factory=ComputeSettings)
    volume: VolumeSettings = field(default_factory=VolumeSettings)

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'pocketstack.db'}"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "pocketstack.toml"


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _coerce(value: str, current: Any) -> Any:
    if isinstance(current, bool):
        if value.strip().lower() not in _TRUE + _FALSE:
            raise ValueError(f"{value!r} is not a boolean (use true or false)")
        return value.strip().lower() in _TRUE
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, Path):
        return Path(value)
    return value


def _apply(obj: Any, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if not hasattr(obj, key):
            raise ValueError(f"unknown setting {key!r} in {type(obj).__name__}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"setting {key!r} must be a table")
            _apply(current, value)
        elif isinstance(value, str) and not isinstance(current, str):
            setattr(obj, key, _coerce(value, current))
        else:
            setattr(obj, key, Path(value) if isinstance(current, Path) else value)


def load_settings(data_dir: str | Path | None = None, env: dict[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Build settings: defaults, then the data dir's TOML, then env, then explicit overrides."""
    env = dict(os.environ if env is None else env)
    settings = Settings()
    if data_dir is None and env.get("POCKETSTACK_DATA_DIR"):
        data_dir = env["POCKETSTACK_DATA_DIR"]
    if data_dir is not None:
        settings.data_dir = Path(data_dir).expanduser().resolve()
    if settings.config_file.exists():
        with open(settings.config_file, "rb") as fh:
            _apply(settings, tomllib.load(fh))
        if data_dir is not None:
            settings.data_dir = Path(data_dir).expanduser().resolve()
    for name, value in env.items():
        if not name.startswith("POCKETSTACK_") or name == "POCKETSTACK_DATA_DIR":
            continue
        path = name[len("POCKETSTACK_"):].lower().split("__")
        target: Any = settings
        for part in path[:-1]:
            target = getattr(target, part, None)
        if target is None or not dataclasses.is_dataclass(target) or not hasattr(target, path[-1]):
            continue  # not one of ours (e.g. POCKETSTACK_TEST_DATABASE_URL)
        current = getattr(target, path[-1])
        if dataclasses.is_dataclass(current):
            raise ValueError(f"{name} names the section [{path[-1]}]; set one of its fields "
                             f"as {name}__<FIELD>")
        try:
            setattr(target, path[-1], _coerce(value, current))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    _apply(settings, {k: v for k, v in overrides.items() if v is not None})
    return settings
