# tests/test_mpi.cmake - the MPI tests (tests/test_mpi.c).
# "mpi" (every build): one process; with MPI it also launches
# `mpiexec -np 2 specssl pretrain` itself (not under the sanitizers).
# "mpi_ranks" (MPI builds only): the test executable on 2 ranks.
set_tests_properties(${name} PROPERTIES TIMEOUT 240)
if(SP_WITH_MPI)
  # Open MPI: ranks as root need these flags (CI runs as root), 2 ranks on any
  # core count need --oversubscribe, and -x forwards the per-rank threading.
  execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE SP_MPIEXEC_VERSION
                  ERROR_QUIET)
  set(SP_MPIEXEC_FLAGS "")
  if(SP_MPIEXEC_VERSION MATCHES "Open MPI|OpenRTE")
    set(SP_MPIEXEC_FLAGS --oversubscribe -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -x CK_FORK)
  endif()
  target_compile_definitions(${exe} PRIVATE SP_MPIEXEC="${MPIEXEC_EXECUTABLE}")
  if(SP_SANITIZE)
    target_compile_definitions(${exe} PRIVATE SP_TEST_NO_MPIRUN=1)
  endif()
  add_test(NAME mpi_ranks
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${SP_MPIEXEC_FLAGS}
                   ${MPIEXEC_PREFLAGS} $<TARGET_FILE:${exe}> ${MPIEXEC_POSTFLAGS})
  set_tests_properties(mpi_ranks PROPERTIES TIMEOUT 180 LABELS "mpi;nosan"
    ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1;CK_FORK=no;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
endif()
