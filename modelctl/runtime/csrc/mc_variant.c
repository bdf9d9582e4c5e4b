/* One compiled variant of the kernels: a tiny extension module whose `table` is a PyCapsule holding
 * the mc_table of mc_kernels.h and mc_ops.h built for one ISA.  variant_<name>.c defines the ISA
 * (MC_ISA_<NAME>) and the module's init function (MC_PYINIT); setup.py gives the compiler flags.
 * Import one only on a CPU that has its instructions (modelctl/runtime/variants.py checks). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "mc_kernels.h"
#include "mc_ops.h"
#include "mc_table.h"

static const mc_table mc_the_table = {
    MC_TABLE_ABI, MC_ISA_NAME,
    mc_quantize_act, mc_dequantize_row, mc_matmul_rows, mc_read_words,
    mc_rmsnorm, mc_rope, mc_attention, mc_glu,
};

static struct PyModuleDef mc_module = {
    PyModuleDef_HEAD_INIT, "modelctl.runtime._mc_" MC_ISA_NAME,
    "modelctl's kernels compiled for one instruction set (" MC_ISA_NAME ")", -1, NULL,
};

PyMODINIT_FUNC MC_PYINIT(void) {
    PyObject *m = PyModule_Create(&mc_module);
    if (m == NULL) return NULL;
    mc_gelu_init();
    PyObject *cap = PyCapsule_New((void *)&mc_the_table, MC_TABLE_CAPSULE, NULL);
    if (cap == NULL || PyModule_AddObject(m, "table", cap) < 0) {
        Py_XDECREF(cap);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
