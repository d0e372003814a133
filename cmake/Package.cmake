# Install rules and the Debian package (CPack DEB): `cpack -G DEB` in the build directory writes
# sie_<version>_amd64.deb. Layout (runtime/ finds its data next to its binary: InstalledDataDir):
#   /usr/bin/sie, sie-run, sie-synth
#   /usr/share/sie/{bpf,kmod,sdk}/include, /usr/share/sie/vmlinux/vmlinux.h  headers the runtime
#       compiles stubs and policies against
#   /usr/share/sie/policies, /usr/share/doc/sie          policies and documentation
#   /usr/include/sie/hint.h, abi.h; /usr/lib/libsie-hint.{a,so}   the hint library
#   /lib/systemd/system/sie.service                      apply /etc/sie/*.yaml at boot
#   /usr/src/sie-<version>/                              the kernel modules as DKMS source
# A system tool: /usr unless told otherwise (the unit names the binary by its full path).
if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX /usr CACHE PATH "install prefix" FORCE)
endif()
include(GNUInstallDirs)
set(_share ${CMAKE_INSTALL_DATADIR}/sie)

install(TARGETS sie sie-run sie-synth RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS sie_hint sie_hint_shared ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES sdk/include/sie/hint.h bpf/include/sie/abi.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/sie)
install(DIRECTORY bpf/include/ DESTINATION ${_share}/bpf/include)
install(DIRECTORY kmod/include/ DESTINATION ${_share}/kmod/include)
install(DIRECTORY sdk/include/ DESTINATION ${_share}/sdk/include)
install(FILES ${SIE_VMLINUX_H} DESTINATION ${_share}/vmlinux)
install(DIRECTORY policies/ DESTINATION ${_share}/policies PATTERN CMakeLists.txt EXCLUDE)
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES sdk/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME SDK.md)

# The unit names the binary by its full path: configured at install time, under the prefix the
# install (or cpack) uses.
install(CODE "
  set(SIE_BIN_DIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  set(SIE_DOC_DIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}\")
  configure_file(${CMAKE_SOURCE_DIR}/runtime/systemd/sie.service.in
                 ${CMAKE_BINARY_DIR}/systemd/sie.service @ONLY)
  file(INSTALL ${CMAKE_BINARY_DIR}/systemd/sie.service
       DESTINATION \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\")")

set(_dkms src/sie-${PROJECT_VERSION})
configure_file(kmod/dkms/dkms.conf.in ${CMAKE_BINARY_DIR}/dkms/dkms.conf @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/dkms/dkms.conf kmod/dkms/Kbuild kmod/sie_kfuncs/sie_kfuncs.c
              kmod/sie_native/sie_native.c kmod/sie_consistency/sie_consistency.c
        DESTINATION ${_dkms})
install(DIRECTORY kmod/include/ DESTINATION ${_dkms}/include)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sie)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "sie developers <sie@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "live, policy-driven tuning of constants compiled into the Linux kernel")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # sie_<version>_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# clang compiles stubs and policies on the machine; dkms builds the modules for each kernel.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "clang, dkms, kmod, linux-headers-amd64 | linux-headers-generic")
configure_file(kmod/dkms/postinst.in ${CMAKE_BINARY_DIR}/dkms/postinst @ONLY)
configure_file(kmod/dkms/prerm.in ${CMAKE_BINARY_DIR}/dkms/prerm @ONLY)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_BINARY_DIR}/dkms/postinst
    ${CMAKE_BINARY_DIR}/dkms/prerm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)  # the package is a system tool, whatever the build's prefix
include(CPack)
