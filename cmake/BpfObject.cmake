# sie_bpf_object(NAME SOURCES a.bpf.c [b.bpf.c ...] [INCLUDES dir...] [DEPENDS file...])
#
# Modeled on libbpf-bootstrap's bpf_object(): compiles each .bpf.c with clang -target bpf against
# the guest kernel's vmlinux.h, statically links them into one object (bpftool gen object), and
# generates a skeleton (bpftool gen skeleton). Gives an INTERFACE target NAME_skel carrying the
# skeleton header directory and libbpf, and the object at ${NAME_BPF_OBJECT}.
set(SIE_BPF_CFLAGS -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror
    -Wno-unused-function -Wno-compare-distinct-pointer-types)
# Clang's own system include dirs, so -target bpf finds asm/types.h (libbpf-bootstrap's trick).
execute_process(COMMAND sh -c "${BPF_CLANG} -v -E - </dev/null 2>&1 | sed -n '/<...> search starts here:/,/End of search list./{ s| \\(/.*\\)|-idirafter \\1|p }'"
                OUTPUT_VARIABLE _clang_sys_includes OUTPUT_STRIP_TRAILING_WHITESPACE)
separate_arguments(SIE_BPF_SYS_INCLUDES UNIX_COMMAND "${_clang_sys_includes}")

function(sie_bpf_object NAME)
  cmake_parse_arguments(A "" "" "SOURCES;INCLUDES;DEPENDS" ${ARGN})
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${NAME})
  set(objs)
  set(incs -I${SIE_VMLINUX_H_DIR} -I${CMAKE_SOURCE_DIR}/sdk/include -I${CMAKE_SOURCE_DIR}/bpf/include)
  foreach(i ${A_INCLUDES})
    list(APPEND incs -I${i})
  endforeach()
  foreach(src ${A_SOURCES})
    get_filename_component(abs ${src} ABSOLUTE)
    get_filename_component(stem ${src} NAME_WE)
    set(obj ${out}/${stem}.bpf.o)
    add_custom_command(
      OUTPUT ${obj}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out}
      COMMAND ${BPF_CLANG} ${SIE_BPF_CFLAGS} ${incs} ${SIE_BPF_SYS_INCLUDES} -c ${abs} -o ${obj}
      DEPENDS ${abs} ${SIE_VMLINUX_H} ${A_DEPENDS}
      IMPLICIT_DEPENDS C ${abs}
      COMMENT "BPF ${NAME}: ${stem}.bpf.c"
      VERBATIM)
    list(APPEND objs ${obj})
  endforeach()
  set(linked ${out}/${NAME}.bpf.o)
  set(skel ${out}/${NAME}.skel.h)
  add_custom_command(
    OUTPUT ${linked} ${skel}
    COMMAND ${BPFTOOL} gen object ${linked} ${objs}
    COMMAND sh -c "${BPFTOOL} gen skeleton ${linked} name ${NAME} > ${skel}.tmp && mv ${skel}.tmp ${skel}"
    DEPENDS ${objs}
    COMMENT "BPF ${NAME}: link + skeleton"
    VERBATIM)
  add_custom_target(${NAME}_bpf DEPENDS ${linked} ${skel})
  add_library(${NAME}_skel INTERFACE)
  add_dependencies(${NAME}_skel ${NAME}_bpf)
  target_include_directories(${NAME}_skel INTERFACE ${out})
  target_link_libraries(${NAME}_skel INTERFACE PkgConfig::LIBBPF PkgConfig::LIBELF)
  set(${NAME}_BPF_OBJECT ${linked} PARENT_SCOPE)
endfunction()
