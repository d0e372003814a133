# The guest kernel: ONE matching set of Debian's 6.12 image, headers, -dbg vmlinux and source,
# chosen by scripts/setup and recorded in build-config/kernel-release. Never the host kernel.
set(_release_file ${CMAKE_SOURCE_DIR}/build-config/kernel-release)
if(NOT SIE_KERNEL_RELEASE)
  if(NOT EXISTS ${_release_file})
    message(FATAL_ERROR "No guest kernel recorded: run scripts/setup first (it writes ${_release_file}).")
  endif()
  file(STRINGS ${_release_file} SIE_KERNEL_RELEASE LIMIT_COUNT 1)
endif()
set(SIE_KERNEL_RELEASE ${SIE_KERNEL_RELEASE} CACHE STRING "guest kernel release" FORCE)
set(SIE_KERNEL_HEADERS /usr/src/linux-headers-${SIE_KERNEL_RELEASE})
set(SIE_KERNEL_IMAGE /boot/vmlinuz-${SIE_KERNEL_RELEASE})
set(SIE_KERNEL_DBG_VMLINUX /usr/lib/debug/boot/vmlinux-${SIE_KERNEL_RELEASE})
foreach(_p ${SIE_KERNEL_HEADERS}/vmlinux ${SIE_KERNEL_IMAGE} ${SIE_KERNEL_DBG_VMLINUX})
  if(NOT EXISTS ${_p})
    message(FATAL_ERROR "Guest kernel ${SIE_KERNEL_RELEASE} is incomplete: ${_p} is missing. Run scripts/setup.")
  endif()
endforeach()

# vmlinux.h from the guest kernel's BTF (the headers package ships a BTF-only vmlinux).
set(SIE_VMLINUX_H_DIR ${CMAKE_BINARY_DIR}/vmlinux)
set(SIE_VMLINUX_H ${SIE_VMLINUX_H_DIR}/vmlinux.h)
add_custom_command(
  OUTPUT ${SIE_VMLINUX_H}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${SIE_VMLINUX_H_DIR}
  COMMAND ${BPFTOOL} btf dump file ${SIE_KERNEL_HEADERS}/vmlinux format c > ${SIE_VMLINUX_H}.tmp
  COMMAND ${CMAKE_COMMAND} -E rename ${SIE_VMLINUX_H}.tmp ${SIE_VMLINUX_H}
  DEPENDS ${SIE_KERNEL_HEADERS}/vmlinux
  COMMENT "vmlinux.h from ${SIE_KERNEL_RELEASE} BTF")
add_custom_target(vmlinux_h DEPENDS ${SIE_VMLINUX_H})
message(STATUS "guest kernel ${SIE_KERNEL_RELEASE}")
