"""What each teaching page computes (numbers and figure data, never widgets): Streamlit-free and tested.
"""
