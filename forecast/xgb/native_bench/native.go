//go:build xgbnative && cgo

package nativebench

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

typedef uint64_t bst_ulong;
typedef void *BoosterHandle;
typedef void *DMatrixHandle;

// The few prototypes of xgboost/c_api.h used here, resolved with dlsym.
static int (*pBoosterCreate)(const DMatrixHandle *, bst_ulong, BoosterHandle *);
static int (*pBoosterFree)(BoosterHandle);
static int (*pBoosterLoadModel)(BoosterHandle, const char *);
static int (*pBoosterSetParam)(BoosterHandle, const char *, const char *);
static int (*pBoosterPredictFromDense)(BoosterHandle, const char *, const char *, DMatrixHandle,
                                       const bst_ulong **, bst_ulong *, const float **);
static int (*pProxyDMatrixCreate)(DMatrixHandle *);
static int (*pDMatrixFree)(DMatrixHandle);
static const char *(*pGetLastError)(void);

static const char *xgb_open(const char *path) {
	void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib) return dlerror();
#define SYM(var, name) if (!(*(void **)(&var) = dlsym(lib, name))) return dlerror();
	SYM(pBoosterCreate, "XGBoosterCreate");
	SYM(pBoosterFree, "XGBoosterFree");
	SYM(pBoosterLoadModel, "XGBoosterLoadModel");
	SYM(pBoosterSetParam, "XGBoosterSetParam");
	SYM(pBoosterPredictFromDense, "XGBoosterPredictFromDense");
	SYM(pProxyDMatrixCreate, "XGProxyDMatrixCreate");
	SYM(pDMatrixFree, "XGDMatrixFree");
	SYM(pGetLastError, "XGBGetLastError");
#undef SYM
	return NULL;
}

static int xgb_loaded(void) { return pBoosterCreate != NULL; }
static const char *xgb_error(void) { return pGetLastError(); }
static int xgb_create(BoosterHandle *h) { return pBoosterCreate(NULL, 0, h); }
static int xgb_free(BoosterHandle h) { return pBoosterFree(h); }
static int xgb_load(BoosterHandle h, const char *path) { return pBoosterLoadModel(h, path); }
static int xgb_set(BoosterHandle h, const char *k, const char *v) { return pBoosterSetParam(h, k, v); }
static int xgb_proxy(DMatrixHandle *m) { return pProxyDMatrixCreate(m); }
static int xgb_proxy_free(DMatrixHandle m) { return pDMatrixFree(m); }

// xgb_predict runs XGBoost's in-place dense predictor (what Python's
// Booster.inplace_predict calls) and returns its result buffer.
static int xgb_predict(BoosterHandle h, const char *arr, const char *cfg, DMatrixHandle proxy,
                       const float **out, bst_ulong *n) {
	const bst_ulong *shape;
	bst_ulong dim, i;
	int rc = pBoosterPredictFromDense(h, arr, cfg, proxy, &shape, &dim, out);
	if (rc != 0) return rc;
	*n = 1;
	for (i = 0; i < dim; i++) *n *= shape[i];
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

var (
	openOnce sync.Once
	openErr  error
)

// Open loads libxgboost.so from path. Later calls return the first result.
func Open(path string) error {
	openOnce.Do(func() {
		cs := C.CString(path)
		defer C.free(unsafe.Pointer(cs))
		if e := C.xgb_open(cs); e != nil {
			openErr = fmt.Errorf("nativebench: opening %s: %s", path, C.GoString(e))
		}
	})
	return openErr
}

func lastError(what string) error {
	return fmt.Errorf("nativebench: %s: %s", what, C.GoString(C.xgb_error()))
}

// Booster is an XGBoost booster set to predict on one thread. It is not
// safe for concurrent use: XGBoost returns predictions in a buffer owned by
// the booster.
type Booster struct {
	h         C.BoosterHandle
	proxy     C.DMatrixHandle
	cfgValue  *C.char
	cfgMargin *C.char
}

// LoadBooster loads an XGBoost model file (JSON or UBJSON, not gzipped)
// after Open.
func LoadBooster(path string) (*Booster, error) {
	if openErr != nil {
		return nil, openErr
	}
	if C.xgb_loaded() == 0 {
		return nil, errors.New("nativebench: Open the library first")
	}
	b := &Booster{}
	if C.xgb_create(&b.h) != 0 {
		return nil, lastError("XGBoosterCreate")
	}
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	if C.xgb_load(b.h, cp) != 0 {
		err := lastError("XGBoosterLoadModel " + path)
		C.xgb_free(b.h)
		return nil, err
	}
	k, v := C.CString("nthread"), C.CString("1")
	defer C.free(unsafe.Pointer(k))
	defer C.free(unsafe.Pointer(v))
	if C.xgb_set(b.h, k, v) != 0 {
		return nil, lastError("XGBoosterSetParam nthread")
	}
	// A proxy DMatrix made once, so each call does not make its own.
	if C.xgb_proxy(&b.proxy) != 0 {
		return nil, lastError("XGProxyDMatrixCreate")
	}
	cfg := `{"type": %d, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": false, "missing": NaN, "cache_id": 0}`
	b.cfgValue = C.CString(fmt.Sprintf(cfg, 0))
	b.cfgMargin = C.CString(fmt.Sprintf(cfg, 1))
	return b, nil
}

// Close frees the booster.
func (b *Booster) Close() {
	C.xgb_proxy_free(b.proxy)
	C.xgb_free(b.h)
	C.free(unsafe.Pointer(b.cfgValue))
	C.free(unsafe.Pointer(b.cfgMargin))
}

// Matrix is a row-major float64 matrix in C memory with its
// __array_interface__ descriptions made in advance, for the whole matrix and
// for each row, so that a benchmark times XGBoost and nothing else.
type Matrix struct {
	data       unsafe.Pointer
	Rows, Cols int
	whole      *C.char
	rowIfaces  []*C.char
}

// NewMatrix copies data (rows × cols, row-major, NaN = missing) to C memory.
func NewMatrix(data []float64, rows, cols int) *Matrix {
	n := rows * cols
	p := C.malloc(C.size_t(max(n, 1) * 8))
	copy(unsafe.Slice((*float64)(p), max(n, 1)), data)
	iface := func(ptr uintptr, r int) *C.char {
		return C.CString(fmt.Sprintf(`{"data": [%d, true], "shape": [%d, %d], "typestr": "<f8", "version": 3, "strides": null, "descr": [["", "<f8"]]}`, ptr, r, cols))
	}
	m := &Matrix{data: p, Rows: rows, Cols: cols, whole: iface(uintptr(p), rows)}
	for r := range rows {
		m.rowIfaces = append(m.rowIfaces, iface(uintptr(p)+uintptr(r*cols*8), 1))
	}
	return m
}

// Free releases the C memory.
func (m *Matrix) Free() {
	C.free(m.data)
	C.free(unsafe.Pointer(m.whole))
	for _, s := range m.rowIfaces {
		C.free(unsafe.Pointer(s))
	}
}

func (b *Booster) predict(iface *C.char, margin bool) ([]float32, error) {
	cfg := b.cfgValue
	if margin {
		cfg = b.cfgMargin
	}
	var out *C.float
	var n C.bst_ulong
	if C.xgb_predict(b.h, iface, cfg, b.proxy, &out, &n) != 0 {
		return nil, lastError("XGBoosterPredictFromDense")
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(out)), int(n)), nil
}

// PredictRow predicts row r alone (one call into XGBoost per row, as a
// single-row scorer would). The result is valid until the next call.
func (b *Booster) PredictRow(m *Matrix, r int, margin bool) ([]float32, error) {
	return b.predict(m.rowIfaces[r], margin)
}

// PredictAll predicts every row of m in one call. The result is valid until
// the next call.
func (b *Booster) PredictAll(m *Matrix, margin bool) ([]float32, error) {
	return b.predict(m.whole, margin)
}
