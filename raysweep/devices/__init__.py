"""The device layer: one `Device` object per kind of device, chosen once from `resources.device`.

    device = device_for(spec.resources)

The registry below is the only place a device name is mapped to behaviour.

May import: `raysweep.core`, `raysweep.config`; torch, torch_xla, and Ray Train's backend and
scaling types (a device says how Ray Train places its workers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raysweep.devices._eager import CpuDevice, CudaDevice
from raysweep.devices._xla import XlaDevice
from raysweep.devices.base import Device, Placement

if TYPE_CHECKING:
    from raysweep.config import ResourcesSpec

DEVICES: dict[str, type[Device]] = {cls.name: cls for cls in (CpuDevice, CudaDevice, XlaDevice)}


def device_for(resources: ResourcesSpec) -> Device:
    return DEVICES[resources.device](resources)


__all__ = ["DEVICES", "CpuDevice", "CudaDevice", "Device", "Placement", "XlaDevice", "device_for"]
