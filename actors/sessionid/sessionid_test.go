package sessionid

import "testing"

func TestRoundRobinAndExhaustion(t *testing.T) {
	a := New(0)
	seen := make(map[uint16]bool)
	for i := 0; i < Count; i++ {
		id, ok := a.Alloc()
		if !ok {
			t.Fatalf("alloc %d failed", i)
		}
		if int(id) != i {
			t.Fatalf("alloc %d gave %d, want round-robin order", i, id)
		}
		if seen[id] || id > 0xFFFE {
			t.Fatalf("bad id %d", id)
		}
		seen[id] = true
	}
	if _, ok := a.Alloc(); ok {
		t.Fatal("65,536th alloc succeeded")
	}
	if a.InUse() != 65535 {
		t.Fatalf("in use %d", a.InUse())
	}
	a.Free(7)
	a.Free(7)
	if id, ok := a.Alloc(); !ok || id != 7 {
		t.Fatalf("after free got %d %v", id, ok)
	}
}

func TestFreedIDNotReusedAtOnce(t *testing.T) {
	a := New(0)
	x, _ := a.Alloc()
	y, _ := a.Alloc()
	a.Free(x)
	z, _ := a.Alloc()
	if z == x || z != y+1 {
		t.Fatalf("got %d after freeing %d (last %d)", z, x, y)
	}
}

func TestLimitAndWrap(t *testing.T) {
	a := New(100)
	for i := 0; i < 100; i++ {
		if _, ok := a.Alloc(); !ok {
			t.Fatal(i)
		}
	}
	if _, ok := a.Alloc(); ok {
		t.Fatal("limit ignored")
	}
	a.Free(3)
	a.Free(70)
	id1, _ := a.Alloc()
	id2, _ := a.Alloc()
	if id1 != 3 || id2 != 70 {
		t.Fatalf("wrapped to %d %d", id1, id2)
	}
}

func BenchmarkAllocFree(b *testing.B) {
	a := New(0)
	for i := 0; i < 10000; i++ {
		a.Alloc()
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		id, _ := a.Alloc()
		a.Free(id)
	}
}
