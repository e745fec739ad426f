# The Debian package (`make package`): CPack's DEB generator over the
# install rules (cmake/QuorateInstall.cmake, src/CMakeLists.txt), plus
# what only a system package has: the systemd unit, its configuration file
# (a conffile), the service's user (postinst), stopping it on removal
# (prerm, postrm), and every program's --help text under
# /usr/share/doc/quorate. tests/consumer/run.sh builds the
# package, unpacks it with dpkg-deb -x and builds against what it holds.

# Each program's --help, written at build time by the program itself.
set(QUORATE_HELP_DIR "${PROJECT_BINARY_DIR}/help")
set(quorate_help_texts)
foreach(program quorate-node quoratectl quorate-chaos)
  set(out "${QUORATE_HELP_DIR}/${program}.txt")
  add_custom_command(OUTPUT "${out}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${QUORATE_HELP_DIR}"
    COMMAND ${CMAKE_COMMAND} -DBINARY=$<TARGET_FILE:${program}>
            -DOUTPUT=${out} -P ${PROJECT_SOURCE_DIR}/cmake/write_help.cmake
    DEPENDS ${program} ${PROJECT_SOURCE_DIR}/cmake/write_help.cmake
    COMMENT "${program} --help")
  list(APPEND quorate_help_texts "${out}")
endforeach()
add_custom_target(quorate_help_texts ALL DEPENDS ${quorate_help_texts})
install(FILES ${quorate_help_texts}
  "${PROJECT_SOURCE_DIR}/README.md"
  "${PROJECT_SOURCE_DIR}/docs/operations.md"
  "${PROJECT_SOURCE_DIR}/docs/contracts.md"
  DESTINATION ${CMAKE_INSTALL_DOCDIR})

# The unit and its configuration only in the package: their paths are the
# system's (/etc, /usr/bin), not a prefix's, so `cmake --install --prefix`
# leaves them out. CPack sets QUORATE_PACKAGING and installs under DESTDIR.
install(CODE "
  if(QUORATE_PACKAGING)
    if(\"\$ENV{DESTDIR}\" STREQUAL \"\")
      message(FATAL_ERROR \"QUORATE_PACKAGING installs into DESTDIR only\")
    endif()
    file(INSTALL DESTINATION /etc/quorate TYPE FILE
      FILES \"${PROJECT_SOURCE_DIR}/packaging/quorate-node.conf\")
    file(INSTALL DESTINATION /lib/systemd/system TYPE FILE
      FILES \"${PROJECT_SOURCE_DIR}/packaging/quorate-node.service\")
    # The static libraries without their debug information (150 MB of
    # the 160 MB; CPACK_STRIP_FILES strips the programs only).
    file(GLOB archives \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/libquorate*.a\")
    foreach(archive IN LISTS archives)
      execute_process(COMMAND \"${CMAKE_STRIP}\" --strip-debug \"\${archive}\"
        COMMAND_ERROR_IS_FATAL ANY)
    endforeach()
  endif()")

set(CPACK_GENERATOR DEB)
set(CPACK_SOURCE_GENERATOR "")
set(CPACK_PACKAGE_NAME quorate)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_DESCRIPTION
  "A member (quorate-node), its command-line client (quoratectl), the chaos
harness (quorate-chaos), the C++ library with its headers, CMake package
and pkg-config file, and a systemd unit for quorate-node.")
set(CPACK_PACKAGE_CONTACT "Quorate maintainers <quorate@localhost>")
set(CPACK_PACKAGE_DIRECTORY "${PROJECT_BINARY_DIR}/packages")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
# DESTDIR staging, so that the unit's and the conffile's absolute paths land
# in the package, not on the building machine.
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_CUSTOM_INSTALL_VARIABLES "QUORATE_PACKAGING=1")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
# The programs' libraries, from dpkg-shlibdeps; the library's users build
# against gRPC, protobuf and abseil (quorateConfig.cmake finds them), and
# the fence adapters against SQLite and libpq.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "adduser, libgrpc++-dev, protobuf-compiler-grpc, libprotobuf-dev, protobuf-compiler, libabsl-dev, libssl-dev")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "libsqlite3-dev, libpq-dev")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  "${PROJECT_SOURCE_DIR}/packaging/postinst"
  "${PROJECT_SOURCE_DIR}/packaging/prerm"
  "${PROJECT_SOURCE_DIR}/packaging/postrm"
  "${PROJECT_SOURCE_DIR}/packaging/conffiles")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
