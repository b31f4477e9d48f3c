"""Where lcai's pieces live on the instance (paths, unit names, the metadata service) and the user-data limits.
Plain constants: every module of the renderer, and the built-in runtimes, read them from here."""

from __future__ import annotations

USER_DATA_LIMIT = 16384  # decoded bytes (the gzip stream): linode/cluster-api-provider-linode's limit
# Linode's OpenAPI spec, metadata.user_data: "Unencoded data must not exceed 65535 bytes, or about 16kb encoded"
USER_DATA_B64_LIMIT = 16384  # characters of base64 (what the API receives)
ENV_FILE = "/etc/lcai/app.env"
LIB = "/usr/local/lib/lcai"
STATE = "/var/lib/lcai"
APP_UNIT = "lcai-app.service"
HEALTH_UNIT = "lcai-health.service"
SETUP_UNIT = "lcai-setup.service"
POST_START_UNIT = "lcai-post-start.service"
# The docker runtime's image pull. Other units that need the app image (a GPU check running it) order
# After=lcai-image-pull.service (and Requires= it); they must then be After=multi-user.target too.
IMAGE_PULL_UNIT = "lcai-image-pull.service"
METADATA_GUARD_UNIT = "lcai-metadata-guard.service"
VOLUME_PREPARE = "/usr/local/lib/lcai/volume-prepare"  # wait for a volume's device; format it only when empty
VOLUME_DEVICE = "/dev/disk/by-id/scsi-0Linode_Volume_{label}"  # how Linode (and lcai-local) name a volume
METADATA_V4 = "169.254.169.254"
METADATA_V6 = "fd00:a9fe:a9fe::1"
SSHD_DROP_IN = "/etc/ssh/sshd_config.d/00-lcai.conf"
START_GRACE = 600  # seconds the health wait allows the app to get running before it counts as failed
