# sie_policy(NAME SOURCE policy.bpf.c CONSTS_DIR dir CONSTS NAME... [DEPENDS target...])
#
# Compiles an sie policy at build time exactly as sie-run does at run time (the same flags,
# SIE_POLICY_CFLAGS, plus -Werror) against the per-constant headers `sie-run --emit-headers`
# generates from CONSTS_DIR. A policy that stops compiling against the SDK or the constants then
# fails the build, and its compile command goes into compile_commands.json (see
# sie_bpf_compile_commands() below) for clangd and clang-tidy. sie-run still compiles a policy
# file given on its command line. The object is ${NAME_POLICY_OBJECT}; the target NAME_policy.

# The flags sie-run compiles every policy with (runtime/policy/policy.cc receives them as
# SIE_POLICY_CFLAGS): one list for both. The include directories are added by each user.
set(SIE_POLICY_CFLAGS -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall
    # A missing accessor must be an error, never an implicit int.
    -Werror=implicit-function-declaration
    # sie_log formats go to bpf_snprintf: a mismatch misprints.
    -Werror=format -Wno-unused-function -Wno-compare-distinct-pointer-types)

# Records one BPF compile command for compile_commands.json (CMake lists only C and C++ targets).
function(sie_bpf_compile_command SOURCE OUTPUT)
  set(args)
  foreach(a ${ARGN})
    string(REPLACE "\\" "\\\\" a "${a}")
    string(REPLACE "\"" "\\\"" a "${a}")
    list(APPEND args "\"${a}\"")
  endforeach()
  list(JOIN args ", " joined)
  set_property(GLOBAL APPEND PROPERTY SIE_BPF_COMPILE_COMMANDS
    "{\"directory\": \"${CMAKE_BINARY_DIR}\", \"file\": \"${SOURCE}\", \"output\": \"${OUTPUT}\", \"arguments\": [${joined}]}")
endfunction()

function(sie_policy NAME)
  cmake_parse_arguments(A "" "SOURCE;CONSTS_DIR" "CONSTS;DEPENDS" ${ARGN})
  get_filename_component(src ${A_SOURCE} ABSOLUTE)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/policies/${NAME})
  set(obj ${out}/${NAME}.bpf.o)
  list(JOIN A_CONSTS "," consts)
  file(GLOB const_jsons CONFIGURE_DEPENDS ${A_CONSTS_DIR}/*/const.json)
  add_custom_command(
    OUTPUT ${out}/include/sie_consts.h
    COMMAND $<TARGET_FILE:sie-run> --emit-headers ${out}/include --const ${consts}
            --consts ${A_CONSTS_DIR}
    DEPENDS sie-run ${const_jsons} ${SIE_VMLINUX_H}
    COMMENT "policy ${NAME}: headers of ${consts}"
    VERBATIM)
  set(cmd ${BPF_CLANG} ${SIE_POLICY_CFLAGS} -Werror -I${out}/include
      -I${CMAKE_SOURCE_DIR}/sdk/include -I${SIE_VMLINUX_H_DIR} -I${CMAKE_SOURCE_DIR}/bpf/include
      ${SIE_BPF_SYS_INCLUDES})
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${cmd} -MD -MF ${obj}.d -c ${src} -o ${obj}
    DEPENDS ${src} ${out}/include/sie_consts.h ${A_DEPENDS}
    DEPFILE ${obj}.d
    COMMENT "policy ${NAME}: ${A_SOURCE}"
    VERBATIM)
  add_custom_target(${NAME}_policy ALL DEPENDS ${obj})
  add_dependencies(${NAME}_policy vmlinux_h)
  sie_bpf_compile_command(${src} ${obj} ${cmd} -c ${src} -o ${obj})
  set(${NAME}_POLICY_OBJECT ${obj} PARENT_SCOPE)
endfunction()

# After every add_subdirectory: writes the recorded BPF compile commands and merges them into
# CMake's compile_commands.json at build time (CMake rewrites that file at each configure).
function(sie_bpf_compile_commands)
  get_property(cmds GLOBAL PROPERTY SIE_BPF_COMPILE_COMMANDS)
  list(JOIN cmds ",\n  " body)
  file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/compile_commands.bpf.json
       CONTENT "[\n  ${body}\n]\n" @ONLY)
  add_custom_target(compile_commands_bpf ALL
    COMMAND ${CMAKE_COMMAND} -DCC=${CMAKE_BINARY_DIR}/compile_commands.json
            -DBPF=${CMAKE_BINARY_DIR}/compile_commands.bpf.json
            -P ${CMAKE_SOURCE_DIR}/cmake/MergeCompileCommands.cmake
    COMMENT "compile_commands.json: BPF policies and objects"
    VERBATIM)
endfunction()
