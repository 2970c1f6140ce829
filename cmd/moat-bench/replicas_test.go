package main

import (
	"slices"
	"testing"
)

func TestParseConcurrencies(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []int
		wantErr bool
	}{
		{name: "default", in: "8,16", want: []int{8, 16}},
		{name: "one", in: "4", want: []int{4}},
		{name: "spaces", in: " 8 , 16 ", want: []int{8, 16}},
		{name: "zero", in: "0,8", wantErr: true},
		{name: "empty item", in: "8,", wantErr: true},
		{name: "not a number", in: "eight", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConcurrencies(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseConcurrencies(%q) error = %v, want error %t", tc.in, err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("parseConcurrencies(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
