# The devices of the QEMU that build.sh builds (--without-default-devices).
# The pc and q35 machines as a default build makes them (-machine pc or
# q35 without -nodefaults: the same devices, the same migration stream),
# and the devices that the tests, the demo and the benchmarks add. The
# machines select the rest (PIIX and its IDE, ICH9 and its AHCI, the ISA
# serial port, ACPI, fw_cfg). See docs/timings.md for what this saves.
CONFIG_I440FX=y
CONFIG_Q35=y
# Made by default with the machines: the display, the default NICs
# (-nic with no model: e1000 on pc, e1000e on q35), the HPET, the
# floppy controller, the parallel port, VMware's I/O port and mouse
CONFIG_VGA_PCI=y
CONFIG_E1000_PCI=y
CONFIG_E1000E_PCI_EXPRESS=y
CONFIG_HPET=y
CONFIG_FDC_ISA=y
CONFIG_PARALLEL=y
CONFIG_VMPORT=y
CONFIG_VMMOUSE=y
# ACPI's CXL tables, which the machines select, link only with CXL
# (10.2.2's cxl-host-stubs.c lacks cxl_fmws_get_all_sorted()), CXL only
# with its memory device, and it depends on the PCI expander bridge and
# PCIe ports
CONFIG_PXB=y
CONFIG_PCIE_PORT=y
CONFIG_CXL=y
CONFIG_CXL_MEM_DEVICE=y
# fullstack.py and the cluster agent: virtio-net (or e1000), virtio-blk
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_NET=y
CONFIG_VIRTIO_BLK=y
# colo-tests.c: the filter-rewriter tests' NIC, and the memory device of
# pc/failover-secondary/discard
CONFIG_RTL8139_PCI=y
CONFIG_VIRTIO_MEM=y
