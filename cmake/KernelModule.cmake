# sie_kernel_module(NAME SOURCES a.c [b.c ...] [SYMVERS other_module_target ...])
#
# Builds an out-of-tree module against the guest kernel's headers (never the host's), with module
# BTF (pahole from dwarves). kbuild wants the sources in M=, so they are copied into the build
# tree; the source folder stays clean. The .ko ends up in ${CMAKE_BINARY_DIR}/kmod/NAME.ko.
function(sie_kernel_module NAME)
  cmake_parse_arguments(A "" "" "SOURCES;HEADERS;SYMVERS" ${ARGN})
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/${NAME}.kbuild)
  set(ko ${CMAKE_BINARY_DIR}/kmod/${NAME}.ko)
  set(objs)
  set(copies)
  foreach(src ${A_SOURCES} ${A_HEADERS})
    get_filename_component(abs ${src} ABSOLUTE)
    get_filename_component(fname ${src} NAME)
    list(APPEND copies COMMAND ${CMAKE_COMMAND} -E copy_if_different ${abs} ${dir}/${fname})
  endforeach()
  foreach(src ${A_SOURCES})
    get_filename_component(stem ${src} NAME_WE)
    list(APPEND objs ${stem}.o)
  endforeach()
  list(JOIN objs " " objs_str)
  set(extra_symbols)
  set(deps)
  foreach(m ${A_SYMVERS})
    list(APPEND extra_symbols ${CMAKE_CURRENT_BINARY_DIR}/${m}.kbuild/Module.symvers)
    list(APPEND deps ${m}_ko)
  endforeach()
  list(JOIN extra_symbols " " extra_symbols_str)
  if(objs_str STREQUAL "${NAME}.o")
    set(kbuild "obj-m := ${NAME}.o\n")
  else()
    set(kbuild "obj-m := ${NAME}.o\n${NAME}-y := ${objs_str}\n")
  endif()
  file(WRITE ${dir}/Kbuild.in "${kbuild}ccflags-y += -I${CMAKE_SOURCE_DIR}/kmod/include\n")
  add_custom_command(
    OUTPUT ${ko}
    COMMAND ${CMAKE_COMMAND} -E copy_if_different ${dir}/Kbuild.in ${dir}/Kbuild
    ${copies}
    COMMAND make -s -C ${SIE_KERNEL_HEADERS} M=${dir} "KBUILD_EXTRA_SYMBOLS=${extra_symbols_str}" modules
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/kmod
    COMMAND ${CMAKE_COMMAND} -E copy ${dir}/${NAME}.ko ${ko}
    DEPENDS ${A_SOURCES} ${A_HEADERS} ${deps}
    COMMENT "KMOD ${NAME}.ko (guest ${SIE_KERNEL_RELEASE})"
    VERBATIM)
  add_custom_target(${NAME}_ko ALL DEPENDS ${ko})
endfunction()
